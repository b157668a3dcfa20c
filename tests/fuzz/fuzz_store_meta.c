/*
 * Fuzz target: store metadata. The input becomes either store.json or the
 * root index of a tiny store (first byte decides); the store is opened, its
 * whole tree walked and every file read. Nothing may crash or leak.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sf_store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char valid_store[] =
	"{\"format\":\"stepfs-store\",\"format_version\":[1,0],\"shards\":[{\"file\":\"shards/00000.zst\","
	"\"kind\":\"files\",\"content_bytes\":10,\"compressed_bytes\":40,\"frames\":1}],"
	"\"indexes\":[{\"file\":\"index/00000.json\"},{\"file\":\"index/00001.json\"}],\"root_index\":0}";
static const char valid_index[] =
	"{\"entries\":[{\"path\":\"a/b.json\",\"type\":\"file\",\"size\":4,\"segments\":[[0,0,4,0]]},"
	"{\"path\":\"sub\",\"type\":\"dir\",\"index\":1},{\"path\":\"l\",\"type\":\"symlink\",\"target\":\"a\"}]}";

static char dir[64];

static void write_file(const char *name, const void *data, size_t size)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f)
		abort();
	if (size && fwrite(data, 1, size, f) != size)
		abort();
	fclose(f);
}

static void walk(sf_store *store, const sf_node *node, int depth)
{
	sf_error err;
	uint32_t i;
	char buf[64];
	size_t got;

	if (depth > 64)
		return;
	if (node->type == SF_NODE_FILE) {
		sf_store_read(store, node, 0, sizeof(buf), buf, &got, &err);
		return;
	}
	if (node->type != SF_NODE_DIR || sf_store_load_dir(store, node, &err) != SF_OK)
		return;
	for (i = 0; i < node->child_count; i++)
		walk(store, node->children[i], depth + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sf_store *store = NULL;
	sf_error err;
	char sub[128];

	if (!dir[0]) {
		snprintf(dir, sizeof(dir), "/tmp/stepfs-fuzz-meta.XXXXXX");
		if (!mkdtemp(dir))
			abort();
		snprintf(sub, sizeof(sub), "%s/index", dir);
		mkdir(sub, 0755);
		snprintf(sub, sizeof(sub), "%s/shards", dir);
		mkdir(sub, 0755);
	}
	if (size == 0)
		return 0;
	if (data[0] & 1) {
		write_file("store.json", data + 1, size - 1);
		write_file("index/00000.json", valid_index, strlen(valid_index));
	} else {
		write_file("store.json", valid_store, strlen(valid_store));
		write_file("index/00000.json", data + 1, size - 1);
	}
	write_file("index/00001.json", valid_index, strlen(valid_index));
	if (sf_store_open(&store, dir, NULL, &err) == SF_OK) {
		walk(store, sf_store_root(store), 0);
		sf_store_free(store);
	}
	return 0;
}
