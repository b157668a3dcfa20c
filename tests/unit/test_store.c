/*
 * Unit tests of the packer, the store reader and unpack through the
 * library API: a small tree with a batch file, odd names, an empty folder
 * and a symlink is packed, looked up, read at every offset, verified and
 * unpacked; then one shard byte is changed. Then folders of their own
 * index loaded by several threads at once, and dropped and loaded again
 * under a metadata budget. Every packed store is also read with the
 * streaming scanner alone, which must give the same tree as the direct
 * reader does.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "sf_format.h"
#include "sf_pack.h"
#include "sf_store.h"
#include "sf_unpack.h"

static char root[64];

static void write_text(const char *rel, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	f = fopen(path, "wb");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static void mkdir_rel(const char *rel)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	mkdir(path, 0755);
}

static char *read_all(sf_store *store, const char *path, size_t *len)
{
	const sf_node *node;
	char *buf;
	size_t got = 0;

	if (sf_store_lookup(store, path, &node, NULL) != SF_OK || node->type != SF_NODE_FILE)
		return NULL;
	buf = malloc(node->size + 1);
	if (!buf || sf_store_read(store, node, 0, node->size, buf, &got, NULL) != SF_OK || got != node->size) {
		free(buf);
		return NULL;
	}
	buf[got] = '\0';
	*len = got;
	return buf;
}

static void count_problem(void *context, const char *message)
{
	(void)message;
	(*(int *)context)++;
}

/* The number of nodes that differ between dir in store a and y in b,
   loading folders as they come; a load that fails counts. */
static unsigned tree_differences(sf_store *a, const sf_node *x, sf_store *b, const sf_node *y)
{
	unsigned bad = 0;
	uint32_t i;

	if (strcmp(x->name, y->name) != 0 || x->type != y->type || x->mode != y->mode || x->ino != y->ino ||
	    x->mtime_sec != y->mtime_sec || x->mtime_nsec != y->mtime_nsec || x->size != y->size ||
	    x->has_xxh64 != y->has_xxh64 || x->xxh64 != y->xxh64 || x->segment_count != y->segment_count ||
	    (x->target && (!y->target || strcmp(x->target, y->target) != 0)) || (!x->target && y->target))
		return 1;
	for (i = 0; i < x->segment_count; i++)
		if (x->segments[i].shard != y->segments[i].shard ||
		    x->segments[i].shard_offset != y->segments[i].shard_offset ||
		    x->segments[i].length != y->segments[i].length || x->segments[i].subst != y->segments[i].subst)
			return 1;
	if (x->type != SF_NODE_DIR)
		return 0;
	if (sf_store_load_dir(a, x, NULL) != SF_OK || sf_store_load_dir(b, y, NULL) != SF_OK ||
	    x->child_count != y->child_count)
		return 1;
	for (i = 0; i < x->child_count; i++)
		bad += tree_differences(a, x->children[i], b, y->children[i]);
	return bad;
}

/* Open the store at path with each reader of indexes and compare the
   trees; *scanned gets how many index reads the direct reader left to the
   scanner. 1 when the trees are the same. */
static int same_with_scanner(const char *path, uint64_t *scanned)
{
	sf_store_options scanner_only = { 0, 0, 1 };
	sf_store *direct = NULL, *scanning = NULL;
	sf_index_stats stats;
	unsigned bad = 1;

	if (sf_store_open(&direct, path, NULL, NULL) == SF_OK &&
	    sf_store_open(&scanning, path, &scanner_only, NULL) == SF_OK) {
		bad = tree_differences(direct, sf_store_root(direct), scanning, sf_store_root(scanning));
		sf_store_index_stats(direct, &stats);
		*scanned = stats.scanned;
		sf_store_index_stats(scanning, &stats);
		if (stats.scanned != stats.loads)
			bad++;
	}
	sf_store_free(direct);
	sf_store_free(scanning);
	if (bad)
		printf("#   %u nodes differ\n", bad);
	return bad == 0;
}

/* A step of 40 batches: its rows.jsonl has more segments than a short
   file's linear search handles (the store keeps their offsets), and its
   batch files come in natural order (batch_2 before batch_10), which the
   store must sort into byte order. */
static void many_batches(void)
{
	char src[128], store_path[128], rel[160], cmd[512];
	char *expected = calloc(1, 64 * 1024);
	sf_pack_options options;
	sf_pack_summary summary;
	sf_store *store = NULL;
	sf_error err;
	const sf_node *rows = NULL, *dir = NULL;
	size_t used = 0, i;
	int b;

	snprintf(src, sizeof(src), "%s/many", root);
	snprintf(store_path, sizeof(store_path), "%s/many.stepfs", root);
	mkdir_rel("many");
	mkdir_rel("many/p");
	mkdir_rel("many/p/sig");
	mkdir_rel("many/p/sig/executions");
	mkdir_rel("many/p/sig/executions/e1");
	mkdir_rel("many/p/steps_data");
	mkdir_rel("many/p/steps_data/t_def");
	write_text("many/p/sig/executions/e1/batch_manager.json", "{\"steps\":{\"t\":\"/x/t.json\"}}");
	/* names sharing their first 16 bytes or more */
	write_text("many/p/a_long_shared_prefix_2.txt", "2");
	write_text("many/p/a_long_shared_prefix_10.txt", "10");
	write_text("many/p/a_long_shared_prefix_1.txt", "1");
	write_text("many/p/a_long_shared_prefi", "short");
	for (b = 0; b < 40 && expected; b++) {
		char text[512];

		snprintf(text, sizeof(text),
			 "{\"seq_no\":%d,\"step_name\":\"t\",\"data\":[[{\"n\":%d,\"s\":\"row %d, \\\"q\\\" ]}\"},"
			 "{\"n\":%d}]],\"type_info\":{\"name\":\"_Batch\"}}", b, b * 2, b, b * 2 + 1);
		snprintf(rel, sizeof(rel), "many/p/steps_data/t_def/batch_%d.json", b);
		write_text(rel, text);
		used += (size_t)snprintf(expected + used, 64 * 1024 - used,
					 "{\"n\":%d,\"s\":\"row %d, \\\"q\\\" ]}\"}\n{\"n\":%d}\n", b * 2, b, b * 2 + 1);
	}
	sf_pack_options_init(&options);
	options.frame_bytes = 4096;
	CHECK(expected && sf_pack(src, store_path, &options, &summary, &err) == SF_OK, "pack 40 batches");
	CHECK(sf_store_open(&store, store_path, NULL, &err) == SF_OK, "open the 40-batch store");
	if (!store || !expected) {
		free(expected);
		return;
	}
	CHECK(sf_store_lookup(store, "step_0/rows.jsonl", &rows, &err) == SF_OK && rows->type == SF_NODE_FILE,
	      "rows.jsonl of 40 batches");
	CHECK(rows && rows->segment_count > 16, "rows.jsonl has more than 16 segments");
	CHECK(rows && rows->size == used, "rows.jsonl size");
	if (rows && rows->size == used) {
		char buf[64];
		int all = 1;

		for (i = 0; i < used; i++) {
			size_t got = 0, want = used - i < 37 ? used - i : 37;

			if (sf_store_read(store, rows, i, 37, buf, &got, &err) != SF_OK || got != want ||
			    memcmp(buf, expected + i, got) != 0)
				all = 0;
		}
		CHECK(all, "rows.jsonl of many segments: reads at every offset match");
	}
	CHECK(sf_store_lookup(store, "source/p/steps_data/t_def", &dir, &err) == SF_OK && dir->child_count == 40,
	      "40 batch files listed");
	if (dir && dir->child_count == 40) {
		int sorted = 1;

		for (i = 1; i < dir->child_count; i++)
			if (strcmp(dir->children[i - 1]->name, dir->children[i]->name) >= 0)
				sorted = 0;
		CHECK(sorted, "batch files in byte order (batch_10 before batch_2)");
		CHECK(strcmp(dir->children[2]->name, "batch_10.json") == 0, "third is batch_10.json");
		CHECK(sf_store_child(dir, "batch_7.json") != NULL, "batch_7.json found by name");
	}
	CHECK(sf_store_lookup(store, "source/p", &dir, &err) == SF_OK, "folder of long names");
	if (dir) {
		static const char *order[] = { "a_long_shared_prefi", "a_long_shared_prefix_1.txt",
					       "a_long_shared_prefix_10.txt", "a_long_shared_prefix_2.txt" };
		int same = dir->child_count >= 4;

		for (i = 0; same && i < 4; i++)
			same = strcmp(dir->children[i]->name, order[i]) == 0;
		CHECK(same, "names sharing 16 bytes and more sorted in byte order");
	}
	sf_store_free(store);
	free(expected);
	{
		uint64_t scanned = 1;

		CHECK(same_with_scanner(store_path, &scanned), "40-batch store: the scanner reads the same tree");
		CHECK_EQ_U64(scanned, 0, "40-batch store: the direct reader reads every index itself");
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", src, store_path);
	CHECK(system(cmd) == 0, "clean up the 40-batch store");
}

/* ---- steps larger than a shard ---- */

/* Pack two steps of 30 batch files (about 57 KB each) with shards of
   16 KiB on `threads` threads: each step rolls over to new shards several
   times, on both packing lanes at once with two threads. Every batch file
   and both rows.jsonl must read back exactly. */
static void rolled_over(int threads)
{
	static const char *steps[] = { "u", "v" };
	char src[128], store_path[128], rel[160], cmd[512];
	char *expected[2] = { calloc(1, 128 * 1024), calloc(1, 128 * 1024) };
	char pad[3001], label[256];
	size_t used[2] = { 0, 0 }, len;
	sf_pack_options options;
	sf_pack_summary summary;
	sf_store *store = NULL;
	sf_error err;
	int s, b, files_ok = 1;
	char *text;

	memset(pad, 'x', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	snprintf(src, sizeof(src), "%s/roll", root);
	snprintf(store_path, sizeof(store_path), "%s/roll-%d.stepfs", root, threads);
	mkdir_rel("roll");
	mkdir_rel("roll/p");
	mkdir_rel("roll/p/sig");
	mkdir_rel("roll/p/sig/executions");
	mkdir_rel("roll/p/sig/executions/e1");
	mkdir_rel("roll/p/steps_data");
	mkdir_rel("roll/p/steps_data/u_abc");
	mkdir_rel("roll/p/steps_data/v_abc");
	write_text("roll/p/sig/executions/e1/batch_manager.json", "{\"steps\":{\"u\":\"/x/u.json\",\"v\":\"/x/v.json\"}}");
	for (s = 0; s < 2 && expected[0] && expected[1]; s++)
		for (b = 0; b < 30; b++) {
			char batch[4096];

			snprintf(batch, sizeof(batch),
				 "{\"seq_no\":%d,\"step_name\":\"%s\",\"data\":[[{\"n\":%d,\"p\":\"%.*s\"},{\"n\":%d}]],"
				 "\"type_info\":{\"name\":\"_Batch\"}}",
				 b, steps[s], b * 2, 1000 + b * 50, pad, b * 2 + 1);
			snprintf(rel, sizeof(rel), "roll/p/steps_data/%s_abc/batch_%d.json", steps[s], b);
			write_text(rel, batch);
			used[s] += (size_t)snprintf(expected[s] + used[s], 128 * 1024 - used[s],
						    "{\"n\":%d,\"p\":\"%.*s\"}\n{\"n\":%d}\n", b * 2, 1000 + b * 50, pad,
						    b * 2 + 1);
		}
	sf_pack_options_init(&options);
	options.threads = threads;
	options.frame_bytes = 4096;
	options.shard_bytes = 16384;
	snprintf(label, sizeof(label), "%d thread(s): pack two steps into 16 KiB shards", threads);
	CHECK(expected[0] && expected[1] && sf_pack(src, store_path, &options, &summary, &err) == SF_OK, label);
	snprintf(label, sizeof(label), "%d thread(s): open the store", threads);
	CHECK(sf_store_open(&store, store_path, NULL, &err) == SF_OK, label);
	if (store && expected[0] && expected[1]) {
		unsigned per_step[2] = { 0, 0 };
		uint32_t i;

		for (i = 0; i < sf_store_shard_count(store); i++) {
			sf_shard_info info;

			sf_store_shard_info(store, i, &info);
			for (s = 0; s < 2; s++)
				if (strcmp(info.kind, "step") == 0 && strncmp(info.label, steps[s], 1) == 0 &&
				    strcmp(info.label + 1, "_abc") == 0)
					per_step[s]++;
		}
		snprintf(label, sizeof(label), "%d thread(s): each step rolled over (%u and %u shards)", threads,
			 per_step[0], per_step[1]);
		CHECK(per_step[0] >= 3 && per_step[1] >= 3, label);
		snprintf(label, sizeof(label), "%d thread(s): verify finds nothing", threads);
		CHECK(sf_store_verify(store, count_problem, NULL) == 0, label);
		for (s = 0; s < 2; s++) {
			snprintf(rel, sizeof(rel), "step_%d/rows.jsonl", s);
			text = read_all(store, rel, &len);
			snprintf(label, sizeof(label), "%d thread(s): %s across shards, byte for byte", threads, rel);
			CHECK(text && len == used[s] && memcmp(text, expected[s], len) == 0, label);
			free(text);
			for (b = 0; b < 30; b++) {
				char *want;
				size_t want_len;
				FILE *f;

				snprintf(rel, sizeof(rel), "%s/p/steps_data/%s_abc/batch_%d.json", src, steps[s], b);
				f = fopen(rel, "rb");
				want = calloc(1, 8192);
				want_len = f && want ? fread(want, 1, 8192, f) : 0;
				if (f)
					fclose(f);
				snprintf(rel, sizeof(rel), "source/p/steps_data/%s_abc/batch_%d.json", steps[s], b);
				text = read_all(store, rel, &len);
				if (!text || !want || len != want_len || memcmp(text, want, len) != 0)
					files_ok = 0;
				free(text);
				free(want);
			}
		}
		snprintf(label, sizeof(label), "%d thread(s): all 60 batch files byte for byte", threads);
		CHECK(files_ok, label);
	}
	sf_store_free(store);
	free(expected[0]);
	free(expected[1]);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", src, store_path);
	CHECK(system(cmd) == 0, "clean up the rolled-over store");
}

/* ---- folders loaded by several threads at once ---- */

#define BIG_FOLDERS 3
#define BIG_FILES 4100 /* past the packer's split at 4,096 entries */

static struct {
	sf_store *store;
	const sf_node *folder[BIG_FOLDERS];
	int failures;
	pthread_mutex_t lock;
} loads = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Load the folders in an order of its own, some ahead of need, then check
   every folder is whole. */
static void *load_all(void *arg)
{
	int t = (int)(intptr_t)arg, i, bad = 0;

	for (i = 0; i < BIG_FOLDERS; i++) {
		const sf_node *dir = loads.folder[(i + t) % BIG_FOLDERS];
		sf_error err;

		if (t % 2)
			sf_store_load_dir_ahead(loads.store, dir, &err);
	}
	for (i = 0; i < BIG_FOLDERS; i++) {
		const sf_node *dir = loads.folder[(t + BIG_FOLDERS - i) % BIG_FOLDERS];
		const sf_node *file;
		sf_error err;
		char name[32];

		if (sf_store_load_dir(loads.store, dir, &err) != SF_OK || dir->child_count != BIG_FILES) {
			bad++;
			continue;
		}
		snprintf(name, sizeof(name), "batch_%d.json", 4099 - t);
		file = sf_store_child(dir, name);
		if (!file || file->size != strlen(name))
			bad++;
	}
	pthread_mutex_lock(&loads.lock);
	loads.failures += bad;
	pthread_mutex_unlock(&loads.lock);
	return NULL;
}

static void dropped_indexes(const char *store_path);

static void concurrent_loads(void)
{
	char src[128], store_path[128], rel[160], cmd[512];
	sf_pack_options options;
	sf_pack_summary summary;
	sf_error err;
	pthread_t threads[6];
	sf_index_stats stats;
	int f, b, started = 0;

	snprintf(src, sizeof(src), "%s/wide", root);
	snprintf(store_path, sizeof(store_path), "%s/wide.stepfs", root);
	mkdir_rel("wide");
	for (f = 0; f < BIG_FOLDERS; f++) {
		snprintf(rel, sizeof(rel), "wide/f%d", f);
		mkdir_rel(rel);
		for (b = 0; b < BIG_FILES; b++) {
			char name[32];

			snprintf(rel, sizeof(rel), "wide/f%d/batch_%d.json", f, b);
			snprintf(name, sizeof(name), "batch_%d.json", b);
			write_text(rel, name); /* each file holds its own name */
		}
	}
	sf_pack_options_init(&options);
	if (!CHECK(sf_pack(src, store_path, &options, &summary, &err) == SF_OK, "pack three folders of 4,100 files"))
		return;
	if (!CHECK(sf_store_open(&loads.store, store_path, NULL, &err) == SF_OK, "open it"))
		return;
	if (!CHECK(sf_store_index_count(loads.store) >= 1 + BIG_FOLDERS, "each big folder has its own index"))
		printf("#   %u indexes\n", sf_store_index_count(loads.store));
	for (f = 0; f < BIG_FOLDERS; f++) {
		snprintf(rel, sizeof(rel), "source/f%d", f);
		if (sf_store_lookup(loads.store, rel, &loads.folder[f], &err) != SF_OK)
			loads.folder[f] = NULL;
	}
	if (CHECK(loads.folder[0] && loads.folder[1] && loads.folder[2] && sf_store_dir_pending(loads.folder[0]),
		  "the three folders are found and not loaded yet")) {
		for (; started < 6; started++)
			if (pthread_create(&threads[started], NULL, load_all, (void *)(intptr_t)started) != 0)
				break;
		while (started > 0)
			pthread_join(threads[--started], NULL);
		CHECK_EQ_U64(loads.failures, 0, "six threads loading them at once each see every folder whole");
		sf_store_index_stats(loads.store, &stats);
		if (!CHECK(stats.loads == sf_store_index_count(loads.store) && stats.failures == 0,
			   "every index loaded once, none twice"))
			printf("#   %" PRIu64 " loaded, %" PRIu64 " failed\n", stats.loads, stats.failures);
	}
	sf_store_free(loads.store);
	{
		uint64_t scanned = 1;

		CHECK(same_with_scanner(store_path, &scanned), "three big folders: the scanner reads the same tree");
		CHECK_EQ_U64(scanned, 0, "three big folders: the direct reader reads every index itself");
	}
	dropped_indexes(store_path);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", src, store_path);
	CHECK(system(cmd) == 0, "clean up the wide store");
}

/* ---- indexes dropped to stay within a metadata budget ---- */

/* The node at path, walked with pins: the caller releases it. */
static const sf_node *walk_pinned(sf_store *store, const char *path)
{
	const sf_node *node = sf_store_root(store);
	char rel[160], *name, *save = NULL;
	sf_error err;

	snprintf(rel, sizeof(rel), "%s", path);
	for (name = strtok_r(rel, "/", &save); name; name = strtok_r(NULL, "/", &save)) {
		const sf_node *child = NULL;

		if (sf_store_open_dir(store, node, &err) == SF_OK) {
			child = sf_store_child(node, name);
			if (child)
				sf_store_hold(store, child);
			sf_store_close_dir(store, node);
		}
		sf_store_release(store, node);
		if (!child)
			return NULL;
		node = child;
	}
	return node;
}

/* 1 when file holds its own name (as the wide store's files do). */
static int holds_own_name(sf_store *store, const sf_node *file)
{
	char buf[64];
	size_t got = 0;

	if (file->type != SF_NODE_FILE || file->size >= sizeof(buf) ||
	    sf_store_read(store, file, 0, file->size, buf, &got, NULL) != SF_OK || got != file->size)
		return 0;
	buf[got] = '\0';
	return strcmp(buf, file->name) == 0;
}

#define DROP_THREADS 4
#define DROP_ROUNDS 150

static struct {
	sf_store *store;
	uint64_t ino[BIG_FOLDERS][BIG_FILES];
	int failures;
	pthread_mutex_t lock;
} drops = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Files by inode number, and some by path, while other threads make the
   store drop and load the folders' indexes again and again. */
static void *get_files(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg * 7919u + 1;
	int i, bad = 0;

	for (i = 0; i < DROP_ROUNDS; i++) {
		int f = (int)(rand_r(&seed) % BIG_FOLDERS), b = (int)(rand_r(&seed) % BIG_FILES);
		const sf_node *file = NULL;
		char want[32];
		sf_error err;

		snprintf(want, sizeof(want), "batch_%d.json", b);
		if (i % 4 == 3) {
			char path[64];

			snprintf(path, sizeof(path), "source/f%d/%s", f, want);
			file = walk_pinned(drops.store, path);
		} else if (sf_store_get(drops.store, drops.ino[f][b], &file, &err) != SF_OK) {
			file = NULL;
		}
		if (!file) {
			bad++;
			continue;
		}
		if (file->ino != drops.ino[f][b] || strcmp(file->name, want) != 0 || !holds_own_name(drops.store, file))
			bad++;
		sf_store_release(drops.store, file);
	}
	pthread_mutex_lock(&drops.lock);
	drops.failures += bad;
	pthread_mutex_unlock(&drops.lock);
	return NULL;
}

static void dropped_indexes(const char *store_path)
{
	sf_store_options options = { 0, 1, 0 }; /* a budget of one byte: every unpinned index goes */
	sf_index_stats before, after;
	const sf_node *kept, *other, *again = NULL;
	pthread_t threads[DROP_THREADS];
	uint64_t kept_ino = 0, bogus;
	int f, b, started = 0, missing = 0;
	sf_error err;

	if (!CHECK(sf_store_open(&drops.store, store_path, &options, &err) == SF_OK, "open with a tiny metadata budget"))
		return;
	kept = walk_pinned(drops.store, "source/f0/batch_7.json");
	if (!CHECK(kept && holds_own_name(drops.store, kept), "a file found with pins reads whole")) {
		sf_store_free(drops.store);
		return;
	}
	kept_ino = kept->ino;
	CHECK_EQ_U64(kept_ino >> 32 != 0, 1, "its inode number names the index that made it");
	sf_store_index_stats(drops.store, &before);
	other = walk_pinned(drops.store, "source/f1/batch_8.json");
	CHECK(other && holds_own_name(drops.store, other), "a file in a second folder reads whole");
	if (other)
		sf_store_release(drops.store, other);
	other = walk_pinned(drops.store, "source/f2/batch_9.json");
	if (other)
		sf_store_release(drops.store, other);
	sf_store_index_stats(drops.store, &after);
	CHECK(after.drops > before.drops, "released folders' indexes are dropped over the budget");
	CHECK(strcmp(kept->name, "batch_7.json") == 0 && holds_own_name(drops.store, kept),
	      "a pinned node stays valid while others are dropped");
	sf_store_release(drops.store, kept);
	sf_store_index_stats(drops.store, &after);
	CHECK_EQ_U64(after.resident, 3, "unpinned, the most recently used index stays, with those above it");
	/* the root's index used last: every other goes */
	if ((other = walk_pinned(drops.store, "source")))
		sf_store_release(drops.store, other);
	sf_store_index_stats(drops.store, &after);
	CHECK_EQ_U64(after.resident, 1, "then only the root's index stays");

	before = after;
	if (CHECK(sf_store_get(drops.store, kept_ino, &again, &err) == SF_OK, "a dropped node found by inode number")) {
		CHECK(again->ino == kept_ino && strcmp(again->name, "batch_7.json") == 0 &&
			      holds_own_name(drops.store, again),
		      "comes back with the same inode number, name and bytes");
		sf_store_release(drops.store, again);
	}
	sf_store_index_stats(drops.store, &after);
	CHECK(after.loads >= before.loads + 2, "its folder and the one above were loaded again");
	bogus = ((uint64_t)sf_store_index_count(drops.store) + 5) << 32;
	CHECK(sf_store_get(drops.store, bogus, &again, &err) == SF_ERR_NOTFOUND, "an inode of no index is not found");
	CHECK(sf_store_get(drops.store, (kept_ino & ~(uint64_t)0xffffffff) | 0xfffffff, &again, &err) ==
		      SF_ERR_NOTFOUND,
	      "an inode past its index's nodes is not found");

	/* every file's inode number, then threads at them */
	for (f = 0; f < BIG_FOLDERS; f++) {
		char path[32];
		const sf_node *dir;

		snprintf(path, sizeof(path), "source/f%d", f);
		dir = walk_pinned(drops.store, path);
		if (!dir || sf_store_open_dir(drops.store, dir, &err) != SF_OK) {
			missing++;
			if (dir)
				sf_store_release(drops.store, dir);
			continue;
		}
		for (b = 0; b < BIG_FILES; b++) {
			char name[32];
			const sf_node *file;

			snprintf(name, sizeof(name), "batch_%d.json", b);
			file = sf_store_child(dir, name);
			if (file)
				drops.ino[f][b] = file->ino;
			else
				missing++;
		}
		sf_store_close_dir(drops.store, dir);
		sf_store_release(drops.store, dir);
	}
	CHECK_EQ_U64(missing, 0, "every file of the three folders listed");
	for (; started < DROP_THREADS; started++)
		if (pthread_create(&threads[started], NULL, get_files, (void *)(intptr_t)started) != 0)
			break;
	while (started > 0)
		pthread_join(threads[--started], NULL);
	sf_store_index_stats(drops.store, &after);
	CHECK_EQ_U64(drops.failures, 0, "four threads find every file by inode and path while indexes come and go");
	CHECK(after.failures == 0 && after.drops > before.drops, "with loads and drops, and no failure");
	if ((other = walk_pinned(drops.store, "source")))
		sf_store_release(drops.store, other);
	sf_store_index_stats(drops.store, &after);
	CHECK_EQ_U64(after.resident, 1, "and only the root's index stays once they are done");
	sf_store_free(drops.store);

	/* a budget that holds them all drops nothing */
	options.metadata_bytes = (size_t)64 << 20;
	if (CHECK(sf_store_open(&drops.store, store_path, &options, &err) == SF_OK, "open with a 64 MiB budget")) {
		for (f = 0; f < BIG_FOLDERS; f++) {
			char path[64];

			snprintf(path, sizeof(path), "source/f%d/batch_1.json", f);
			if ((other = walk_pinned(drops.store, path)))
				sf_store_release(drops.store, other);
		}
		sf_store_index_stats(drops.store, &after);
		CHECK(after.drops == 0 && after.resident == sf_store_index_count(drops.store) && after.bytes > 0 &&
			      after.bytes <= after.budget_bytes,
		      "within the budget nothing is dropped, and the bytes held are counted");
		sf_store_free(drops.store);
	}
}

int main(void)
{
	static const char batch[] =
		"{\"seq_no\":0,\"step_name\":\"s\",\"data\":[[{\"a\":0.1,\"t\":\"caf\\u00e9\"},{\"b\":1e-07},[1,[2]]]],"
		"\"type_info\":{\"name\":\"_Batch\"}}";
	char src[128], store_path[128], out[128], cmd[512];
	sf_pack_options options;
	sf_pack_summary summary;
	sf_store *store = NULL;
	sf_error err;
	const sf_node *node;
	char *text;
	size_t len, i;
	int problems = 0;

	snprintf(root, sizeof(root), "/tmp/stepfs-unit.XXXXXX");
	if (!mkdtemp(root))
		return 1;
	snprintf(src, sizeof(src), "%s/src", root);
	snprintf(store_path, sizeof(store_path), "%s/store", root);
	snprintf(out, sizeof(out), "%s/out", root);
	mkdir_rel("src");
	mkdir_rel("src/p");
	mkdir_rel("src/p/sig");
	mkdir_rel("src/p/sig/executions");
	mkdir_rel("src/p/sig/executions/e1");
	mkdir_rel("src/p/sig/executions/e1/built_batches");
	mkdir_rel("src/p/steps_data");
	mkdir_rel("src/p/steps_data/s_abc");
	write_text("src/p/sig/executions/e1/batch_manager.json", "{\"steps\":{\"s\":\"/x/s.json\"}}");
	write_text("src/p/steps_data/s_abc/batch_0.json", batch);
	write_text("src/p/steps_data/s_abc/batch_1.json", batch);
	write_text("src/name with\nnewline.txt", "plain text\n");
	snprintf(cmd, sizeof(cmd), "%s/link", src);
	CHECK(symlink("p/steps_data", cmd) == 0, "make a symlink");

	sf_pack_options_init(&options);
	options.threads = 2;
	options.frame_bytes = 4096;
	CHECK(sf_pack(src, store_path, &options, &summary, &err) == SF_OK, "pack");
	CHECK(strcmp(summary.layout, "current") == 0, "layout recognised as current");
	CHECK_EQ_U64(summary.batches, 2, "two batches");
	CHECK_EQ_U64(summary.rows, 6, "six rows");
	CHECK(sf_pack(src, store_path, &options, &summary, &err) == SF_ERR_EXISTS, "packing over a store is refused");
	options.shard_bytes = 0;
	snprintf(cmd, sizeof(cmd), "%s/zero-shards", root);
	CHECK(sf_pack(src, cmd, &options, &summary, &err) == SF_ERR_INVALID &&
	      strstr(err.message, "shard size 0 is below the frame size 4096") != NULL,
	      "a shard size below the frame size is refused, not divided by");
	options.shard_bytes = SF_DEFAULT_SHARD_BYTES;

	CHECK(sf_store_open(&store, store_path, NULL, &err) == SF_OK, "open");
	text = read_all(store, "source/p/steps_data/s_abc/batch_1.json", &len);
	CHECK(text && len == strlen(batch) && memcmp(text, batch, len) == 0, "source batch file byte for byte");
	free(text);
	text = read_all(store, "step_0/batches/batch_0.json", &len);
	CHECK(text && strcmp(text, batch) == 0, "step_0/batches/batch_0.json byte for byte");
	free(text);
	text = read_all(store, "step_0/rows.jsonl", &len);
	CHECK(text && strcmp(text, "{\"a\":0.1,\"t\":\"caf\\u00e9\"}\n{\"b\":1e-07}\n[1,[2]]\n"
				   "{\"a\":0.1,\"t\":\"caf\\u00e9\"}\n{\"b\":1e-07}\n[1,[2]]\n") == 0,
	      "rows.jsonl: every row once per line, values as written");
	free(text);
	text = read_all(store, "source/name with\nnewline.txt", &len);
	CHECK(text && strcmp(text, "plain text\n") == 0, "a name with a newline");
	free(text);
	CHECK(sf_store_lookup(store, "source/link", &node, &err) == SF_OK && node->type == SF_NODE_SYMLINK &&
	      strcmp(node->target, "p/steps_data") == 0, "symlink kept as a symlink");
	CHECK(sf_store_lookup(store, "source/p/sig/executions/e1/built_batches", &node, &err) == SF_OK &&
	      node->type == SF_NODE_DIR && node->child_count == 0, "empty folder kept");
	CHECK(sf_store_lookup(store, "by-name/s", &node, &err) == SF_OK && node->type == SF_NODE_SYMLINK,
	      "by-name link");
	CHECK(sf_store_lookup(store, "source/missing", &node, &err) == SF_ERR_NOTFOUND, "missing path");

	/* every offset and length of a file spanning several frames */
	if (sf_store_lookup(store, "step_0/batches/batch_1.json", &node, &err) == SF_OK) {
		char buf[512];
		int all = 1;

		for (i = 0; i < strlen(batch); i++) {
			size_t got = 0, want = strlen(batch) - i < 37 ? strlen(batch) - i : 37;

			if (sf_store_read(store, node, i, 37, buf, &got, &err) != SF_OK || got != want ||
			    memcmp(buf, batch + i, got) != 0)
				all = 0;
		}
		CHECK(all, "reads at every offset match");
	}
	CHECK(sf_store_verify(store, count_problem, &problems) == 0 && problems == 0, "verify passes");
	CHECK(sf_unpack(store, out, &err) == SF_OK, "unpack");
	sf_store_free(store);
	{
		uint64_t scanned = 0;

		/* the packer escapes the newline in a name: the scanner reads that index */
		CHECK(same_with_scanner(store_path, &scanned), "the scanner reads the same tree");
		CHECK(scanned >= 1, "an index with an escaped name is left to the scanner");
	}
	snprintf(cmd, sizeof(cmd), "diff -r '%s' '%s'", src, out);
	CHECK(system(cmd) == 0, "unpack is diff -r clean");

	/* one changed byte in the step shard */
	{
		char shard[256];
		int fd;
		unsigned char byte;

		snprintf(shard, sizeof(shard), "%s/shards/00001.zst", store_path);
		fd = open(shard, O_RDWR);
		if (fd >= 0 && pread(fd, &byte, 1, 20) == 1) {
			byte ^= 0x20;
			if (pwrite(fd, &byte, 1, 20) != 1)
				byte = 0;
		}
		if (fd >= 0)
			close(fd);
		problems = 0;
		CHECK(sf_store_open(&store, store_path, NULL, &err) == SF_OK, "a damaged store still opens");
		CHECK(sf_store_verify(store, count_problem, &problems) > 0 && problems > 0, "verify reports the damage");
		text = read_all(store, "source/name with\nnewline.txt", &len);
		CHECK(text && strcmp(text, "plain text\n") == 0, "files in other shards still read");
		free(text);
		sf_store_free(store);
	}
	many_batches();
	rolled_over(1);
	rolled_over(2);
	concurrent_loads();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd) != 0)
		return 1;
	return check_done();
}
