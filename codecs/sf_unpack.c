#include "sf_unpack.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sf_util.h"
#include "sf_xxhash.h"

#define UNPACK_BUFFER_BYTES (1u << 20)

static void set_times(int dirfd, const char *name, const sf_node *node, int flags)
{
	struct timespec times[2];

	times[0].tv_sec = node->mtime_sec;
	times[0].tv_nsec = node->mtime_nsec;
	times[1] = times[0];
	utimensat(dirfd, name, times, flags);
}

static sf_err write_file(sf_store *store, const sf_node *node, const char *path,
			 unsigned char *buffer, sf_error *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	sf_xxh64_state hash;
	uint64_t offset = 0;
	sf_err rc = SF_OK;

	if (fd < 0)
		return sf_error_io(err, errno, "'%s': cannot create", path);
	sf_xxh64_init(&hash, 0);
	while (offset < node->size) {
		size_t got = 0;

		rc = sf_store_read_sequential(store, node, offset, UNPACK_BUFFER_BYTES, buffer, &got, err);
		if (rc != SF_OK)
			goto out;
		if (got == 0) {
			rc = sf_error_set(err, SF_ERR_CORRUPT, "'%s': store ended early at byte %" PRIu64, path, offset);
			goto out;
		}
		sf_xxh64_update(&hash, buffer, got);
		if (sf_write_all(fd, buffer, got) != 0) {
			rc = sf_error_io(err, errno, "'%s': write failed at byte %" PRIu64, path, offset);
			goto out;
		}
		offset += got;
	}
	if (node->has_xxh64 && sf_xxh64_digest(&hash) != node->xxh64) {
		rc = sf_error_set(err, SF_ERR_CORRUPT, "'%s': content does not match its fingerprint", path);
		goto out;
	}
	if (fchmod(fd, node->mode) != 0) {
		rc = sf_error_io(err, errno, "'%s': cannot set mode", path);
		goto out;
	}
out:
	if (close(fd) != 0 && rc == SF_OK)
		rc = sf_error_io(err, errno, "'%s': close failed", path);
	if (rc == SF_OK)
		set_times(AT_FDCWD, path, node, 0);
	return rc;
}

static sf_err unpack_dir(sf_store *store, const sf_node *dir, const char *path,
			 unsigned char *buffer, sf_error *err)
{
	uint32_t i;
	sf_err rc = sf_store_load_dir(store, dir, err);

	for (i = 0; rc == SF_OK && i < dir->child_count; i++) {
		const sf_node *child = dir->children[i];
		char *child_path = sf_path_join(path, child->name);

		if (!child_path)
			return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		if (child->type == SF_NODE_DIR) {
			if (mkdir(child_path, 0700) != 0)
				rc = sf_error_io(err, errno, "'%s': cannot create folder", child_path);
			else
				rc = unpack_dir(store, child, child_path, buffer, err);
		} else if (child->type == SF_NODE_FILE) {
			rc = write_file(store, child, child_path, buffer, err);
		} else if (symlink(child->target, child_path) != 0) {
			rc = sf_error_io(err, errno, "'%s': cannot create symlink", child_path);
		} else {
			set_times(AT_FDCWD, child_path, child, AT_SYMLINK_NOFOLLOW);
		}
		free(child_path);
	}
	/* after the children: a read-only folder can be filled first */
	if (rc == SF_OK && chmod(path, dir->mode) != 0)
		rc = sf_error_io(err, errno, "'%s': cannot set mode", path);
	if (rc == SF_OK)
		set_times(AT_FDCWD, path, dir, 0);
	return rc;
}

sf_err sf_unpack(sf_store *store, const char *dest, sf_error *err)
{
	const sf_node *source;
	unsigned char *buffer;
	struct stat st;
	sf_err rc;

	if (lstat(dest, &st) == 0)
		return sf_error_set(err, SF_ERR_EXISTS, "'%s': already exists; unpack writes a new folder", dest);
	rc = sf_store_lookup(store, "source", &source, err);
	if (rc != SF_OK)
		return rc;
	buffer = malloc(UNPACK_BUFFER_BYTES);
	if (!buffer)
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	if (mkdir(dest, 0700) != 0)
		rc = sf_error_io(err, errno, "'%s': cannot create folder", dest);
	else
		rc = unpack_dir(store, source, dest, buffer, err);
	free(buffer);
	return rc;
}
