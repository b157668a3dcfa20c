/*
 * Fuzz target: 2.0 index documents. The input (after its first byte) is
 * the JSON text of the root index of a tiny 2.0 store; it is compressed
 * into index/00000.json.zst, or written as it is when the first byte is
 * odd (the zstd frame itself is then the input). The store is opened, its
 * whole tree walked and every file read. Nothing may crash or leak.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "sf_store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char store_json[] =
	"{\"format\":\"stepfs-store\",\"format_version\":[2,0],\"shards\":[{\"file\":\"shards/00000.zst\","
	"\"kind\":\"files\",\"content_bytes\":10,\"compressed_bytes\":40,\"frames\":1}],"
	"\"indexes\":[{\"file\":\"index/00000.json.zst\"},{\"file\":\"index/00001.json.zst\"}],\"root_index\":0}";
static const char sub_index[] =
	"{\"format\":\"stepfs-index\",\"entries\":[[\"f\",\"x\",420,5,[0,0,4,0]]]}";

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

static void write_compressed(const char *name, const void *data, size_t size)
{
	size_t bound = ZSTD_compressBound(size), got;
	void *buf = malloc(bound);

	if (!buf)
		abort();
	got = ZSTD_compress(buf, bound, data, size, 1);
	if (ZSTD_isError(got))
		abort();
	write_file(name, buf, got);
	free(buf);
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
		snprintf(dir, sizeof(dir), "/tmp/stepfs-fuzz-index.XXXXXX");
		if (!mkdtemp(dir))
			abort();
		snprintf(sub, sizeof(sub), "%s/index", dir);
		mkdir(sub, 0755);
		snprintf(sub, sizeof(sub), "%s/shards", dir);
		mkdir(sub, 0755);
		write_file("store.json", store_json, strlen(store_json));
		write_compressed("index/00001.json.zst", sub_index, strlen(sub_index));
	}
	if (size == 0)
		return 0;
	if (data[0] & 1)
		write_file("index/00000.json.zst", data + 1, size - 1);
	else
		write_compressed("index/00000.json.zst", data + 1, size - 1);
	if (sf_store_open(&store, dir, NULL, &err) == SF_OK) {
		walk(store, sf_store_root(store), 0);
		sf_store_free(store);
	}
	return 0;
}
