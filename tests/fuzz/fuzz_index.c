/*
 * Fuzz target: 2.0 index documents. The input (after its first byte) is
 * the JSON text of the root index of a tiny 2.0 store; it is compressed
 * into index/00000.json.zst, or written as it is when the first byte is
 * odd (the zstd frame itself is then the input). The store is opened
 * twice: once as stepfs opens it (the direct reader, with the streaming
 * scanner where it gives up) and once with the scanner alone. Both trees
 * are walked side by side and every file read: every node and every load
 * error must be the same in both (the process aborts on a difference),
 * and nothing may crash or leak.
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

static int same_text(const char *x, const char *y)
{
	return (!x && !y) || (x && y && strcmp(x, y) == 0);
}

static int same_node(const sf_node *x, const sf_node *y)
{
	uint32_t i;

	if (strcmp(x->name, y->name) != 0 || x->type != y->type || x->mode != y->mode || x->ino != y->ino ||
	    x->mtime_sec != y->mtime_sec || x->mtime_nsec != y->mtime_nsec || x->size != y->size ||
	    x->has_xxh64 != y->has_xxh64 || (x->has_xxh64 && x->xxh64 != y->xxh64) || x->index_id != y->index_id ||
	    x->segment_count != y->segment_count || !same_text(x->target, y->target))
		return 0;
	for (i = 0; i < x->segment_count; i++) {
		const sf_segment *s = &x->segments[i], *t = &y->segments[i];

		if (s->shard != t->shard || s->shard_offset != t->shard_offset || s->length != t->length ||
		    s->subst != t->subst)
			return 0;
	}
	return 1;
}

/* Walk x in store a and y in store b together. */
static void walk(sf_store *a, const sf_node *x, sf_store *b, const sf_node *y, int depth)
{
	sf_error ea, eb;
	sf_err ra, rb;
	uint32_t i;
	char buf[64];
	size_t got;

	if (!same_node(x, y))
		abort();
	if (depth > 64)
		return;
	if (x->type == SF_NODE_FILE) {
		sf_store_read(a, x, 0, sizeof(buf), buf, &got, &ea);
		return;
	}
	if (x->type != SF_NODE_DIR)
		return;
	ra = sf_store_load_dir(a, x, &ea);
	rb = sf_store_load_dir(b, y, &eb);
	if (ra != rb || (ra != SF_OK && strcmp(ea.message, eb.message) != 0))
		abort();
	if (ra != SF_OK)
		return;
	if (x->child_count != y->child_count || x->loaded != y->loaded || x->lazy_children != y->lazy_children)
		abort();
	for (i = 0; i < x->child_count; i++)
		walk(a, x->children[i], b, y->children[i], depth + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sf_store_options scanner_only = { 0, 0, 1 };
	sf_store *store = NULL, *scanned = NULL;
	sf_error err, err_scanned;
	sf_err rc, rc_scanned;
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
	rc = sf_store_open(&store, dir, NULL, &err);
	rc_scanned = sf_store_open(&scanned, dir, &scanner_only, &err_scanned);
	if (rc != rc_scanned || (rc != SF_OK && strcmp(err.message, err_scanned.message) != 0))
		abort();
	if (rc == SF_OK) {
		walk(store, sf_store_root(store), scanned, sf_store_root(scanned), 0);
		sf_store_free(store);
		sf_store_free(scanned);
	}
	return 0;
}
