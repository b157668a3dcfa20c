/*
 * replay.c - runs a libFuzzer target's entry point over saved inputs
 * without libFuzzer, so `make check` replays each corpus under the normal
 * (or sanitizer) build. Arguments are files or directories of files.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
	FILE *file = fopen(path, "rb");
	unsigned char *buf = NULL;
	long size;
	int rc = 1;

	if (!file) {
		fprintf(stderr, "replay: '%s': cannot open\n", path);
		return 1;
	}
	if (fseek(file, 0, SEEK_END) != 0 || (size = ftell(file)) < 0 ||
	    fseek(file, 0, SEEK_SET) != 0)
		goto out;
	buf = malloc(size ? (size_t)size : 1);
	if (!buf || fread(buf, 1, (size_t)size, file) != (size_t)size)
		goto out;
	LLVMFuzzerTestOneInput(buf, (size_t)size);
	rc = 0;
out:
	free(buf);
	fclose(file);
	return rc;
}

static int replay_path(const char *path)
{
	struct stat st;
	DIR *dir;
	struct dirent *entry;
	int rc = 0;
	char child[4096];

	if (stat(path, &st) != 0) {
		fprintf(stderr, "replay: '%s': not found\n", path);
		return 1;
	}
	if (!S_ISDIR(st.st_mode))
		return replay_file(path);
	dir = opendir(path);
	if (!dir)
		return 1;
	while ((entry = readdir(dir)) != NULL) {
		if (entry->d_name[0] == '.')
			continue;
		snprintf(child, sizeof(child), "%s/%s", path, entry->d_name);
		rc |= replay_path(child);
	}
	closedir(dir);
	return rc;
}

int main(int argc, char **argv)
{
	int rc = 0;

	for (int i = 1; i < argc; i++)
		rc |= replay_path(argv[i]);
	return rc;
}
