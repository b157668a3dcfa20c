/*
 * stepfs - mount a stepfs store read-only with FUSE (low-level API).
 *
 * A node's inode number (stable, see sf_store.h) is its FUSE node id; the
 * root's is FUSE_ROOT_ID. Loaded indexes may be dropped to stay within the
 * metadata budget, so every operation pins the nodes it uses for as long
 * as it uses them: an open file or folder keeps its pin until released.
 * Everything is immutable while mounted: entries, attributes and file
 * pages are cached by the kernel with long timeouts.
 */
#define FUSE_USE_VERSION 312

#include <errno.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <syslog.h>
#include <unistd.h>

#include "sf_config.h"
#include "sf_format.h"
#include "sf_store.h"
#include "sf_util.h"

#define CACHE_TIMEOUT_SECONDS 86400.0
#define STATS_DIR ".stepfs"

typedef struct stepfs {
	sf_store *store;
	const char *store_path;
	uid_t uid;
	gid_t gid;
	int foreground;
	/* counters the library does not keep */
	uint64_t bytes_served, reads, read_errors, open_files;
	pthread_mutex_t lock;
	uint64_t cache_bytes; /* the cache's budget */
	/* the .stepfs/ folder: virtual nodes outside the store's tree */
	sf_node stats_dir, stats_json, metrics;
} stepfs;

static stepfs fs_state;
static char stats_dir_name[] = STATS_DIR, stats_json_name[] = "stats.json", metrics_name[] = "metrics";

static void log_error(const char *message)
{
	syslog(LOG_ERR, "%s", message);
	if (fs_state.foreground)
		fprintf(stderr, "stepfs: %s\n", message);
}

static int is_virtual(const sf_node *node)
{
	return node == &fs_state.stats_dir || node == &fs_state.stats_json || node == &fs_state.metrics;
}

static int reply_error(fuse_req_t req, const sf_error *err);

/* The node of ino, pinned (give it back with put_node); NULL after an
   error reply. Loads the indexes on its path that were dropped. */
static const sf_node *get_node(fuse_req_t req, fuse_ino_t ino)
{
	const sf_node *node;
	sf_error err = { 0 };

	if (ino == fs_state.stats_dir.ino)
		return &fs_state.stats_dir;
	if (ino == fs_state.stats_json.ino)
		return &fs_state.stats_json;
	if (ino == fs_state.metrics.ino)
		return &fs_state.metrics;
	if (sf_store_get(fs_state.store, ino, &node, &err) != SF_OK) {
		reply_error(req, &err);
		return NULL;
	}
	return node;
}

static void put_node(const sf_node *node)
{
	if (!is_virtual(node))
		sf_store_release(fs_state.store, node);
}

static void fill_stat(const sf_node *node, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = node->ino;
	st->st_uid = fs_state.uid;
	st->st_gid = fs_state.gid;
	st->st_mtim.tv_sec = node->mtime_sec;
	st->st_mtim.tv_nsec = node->mtime_nsec;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
	st->st_blksize = 128 * 1024;
	switch (node->type) {
	case SF_NODE_DIR:
		st->st_mode = S_IFDIR | node->mode;
		st->st_nlink = 2;
		break;
	case SF_NODE_SYMLINK:
		st->st_mode = S_IFLNK | 0777;
		st->st_nlink = 1;
		st->st_size = (off_t)node->size;
		break;
	default:
		st->st_mode = S_IFREG | node->mode;
		st->st_nlink = 1;
		st->st_size = (off_t)node->size;
		st->st_blocks = (blkcnt_t)((node->size + 511) / 512);
		break;
	}
}

static int reply_error(fuse_req_t req, const sf_error *err)
{
	if (err->code != SF_ERR_NOTFOUND)
		log_error(err->message);
	return fuse_reply_err(req, -sf_err_to_errno(err->code));
}

/* ---- the .stepfs/ counters ---------------------------------------------- */

static char *render_stats(int prometheus)
{
	sf_cache_stats cs;
	sf_index_stats is;
	uint64_t served, reads, read_errors, open_files;
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	double hit_rate;

	if (!out)
		return NULL;
	sf_store_cache_stats(fs_state.store, &cs);
	sf_store_index_stats(fs_state.store, &is);
	pthread_mutex_lock(&fs_state.lock);
	served = fs_state.bytes_served;
	reads = fs_state.reads;
	read_errors = fs_state.read_errors;
	open_files = fs_state.open_files;
	pthread_mutex_unlock(&fs_state.lock);
	hit_rate = cs.hits + cs.misses ? (double)cs.hits / (double)(cs.hits + cs.misses) : 0.0;
	if (prometheus) {
		fprintf(out,
			"# HELP stepfs_frames_decompressed_total Frames decompressed into the cache.\n"
			"# TYPE stepfs_frames_decompressed_total counter\n"
			"stepfs_frames_decompressed_total %" PRIu64 "\n"
			"# TYPE stepfs_cache_hits_total counter\nstepfs_cache_hits_total %" PRIu64 "\n"
			"# TYPE stepfs_cache_misses_total counter\nstepfs_cache_misses_total %" PRIu64 "\n"
			"# TYPE stepfs_cache_evictions_total counter\nstepfs_cache_evictions_total %" PRIu64 "\n"
			"# HELP stepfs_cache_shared_fills_total Reads that waited for a frame another thread was decompressing.\n"
			"# TYPE stepfs_cache_shared_fills_total counter\nstepfs_cache_shared_fills_total %" PRIu64 "\n"
			"# HELP stepfs_cache_buffers_reused_total Misses decompressed into a reused buffer.\n"
			"# TYPE stepfs_cache_buffers_reused_total counter\nstepfs_cache_buffers_reused_total %" PRIu64 "\n"
			"# TYPE stepfs_cache_bytes gauge\nstepfs_cache_bytes %" PRIu64 "\n"
			"# TYPE stepfs_cache_budget_bytes gauge\nstepfs_cache_budget_bytes %" PRIu64 "\n"
			"# TYPE stepfs_bytes_served_total counter\nstepfs_bytes_served_total %" PRIu64 "\n"
			"# TYPE stepfs_bytes_decompressed_total counter\nstepfs_bytes_decompressed_total %" PRIu64 "\n"
			"# TYPE stepfs_reads_total counter\nstepfs_reads_total %" PRIu64 "\n"
			"# TYPE stepfs_read_errors_total counter\nstepfs_read_errors_total %" PRIu64 "\n"
			"# TYPE stepfs_open_files gauge\nstepfs_open_files %" PRIu64 "\n"
			"# HELP stepfs_indexes_loaded Index loads (a reload after a drop counts again).\n"
			"# TYPE stepfs_indexes_loaded counter\nstepfs_indexes_loaded %" PRIu64 "\n"
			"# TYPE stepfs_index_failures_total counter\nstepfs_index_failures_total %" PRIu64 "\n"
			"# HELP stepfs_indexes_dropped_total Loaded indexes dropped to stay within the metadata budget.\n"
			"# TYPE stepfs_indexes_dropped_total counter\nstepfs_indexes_dropped_total %" PRIu64 "\n"
			"# TYPE stepfs_indexes_resident gauge\nstepfs_indexes_resident %" PRIu64 "\n"
			"# HELP stepfs_indexes_scanned_total Index loads left by the in-memory reader to the streaming one.\n"
			"# TYPE stepfs_indexes_scanned_total counter\nstepfs_indexes_scanned_total %" PRIu64 "\n"
			"# TYPE stepfs_metadata_bytes gauge\nstepfs_metadata_bytes %" PRIu64 "\n"
			"# TYPE stepfs_metadata_budget_bytes gauge\nstepfs_metadata_budget_bytes %" PRIu64 "\n",
			cs.misses, cs.hits, cs.misses, cs.evictions, cs.shared_fills, cs.recycled,
			cs.bytes_in_use, cs.budget_bytes, served,
			cs.bytes_decompressed, reads, read_errors, open_files, is.loads, is.failures, is.drops,
			is.resident, is.scanned, is.bytes, is.budget_bytes);
	} else {
		fprintf(out,
			"{\n  \"frames_decompressed\": %" PRIu64 ",\n  \"cache_hits\": %" PRIu64
			",\n  \"cache_misses\": %" PRIu64 ",\n  \"cache_hit_rate\": %.4f,\n"
			"  \"cache_evictions\": %" PRIu64 ",\n  \"cache_shared_fills\": %" PRIu64 ",\n"
			"  \"cache_buffers_reused\": %" PRIu64 ",\n  \"cache_bytes\": %" PRIu64 ",\n"
			"  \"cache_budget_bytes\": %" PRIu64 ",\n  \"bytes_served\": %" PRIu64 ",\n"
			"  \"bytes_decompressed\": %" PRIu64 ",\n  \"reads\": %" PRIu64 ",\n"
			"  \"read_errors\": %" PRIu64 ",\n  \"open_files\": %" PRIu64 ",\n"
			"  \"indexes_loaded\": %" PRIu64 ",\n  \"index_failures\": %" PRIu64 ",\n"
			"  \"indexes_dropped\": %" PRIu64 ",\n  \"indexes_resident\": %" PRIu64 ",\n"
			"  \"indexes_scanned\": %" PRIu64 ",\n"
			"  \"metadata_bytes\": %" PRIu64 ",\n  \"metadata_budget_bytes\": %" PRIu64 "\n}\n",
			cs.misses, cs.hits, cs.misses, hit_rate, cs.evictions, cs.shared_fills, cs.recycled,
			cs.bytes_in_use, cs.budget_bytes,
			served, cs.bytes_decompressed, reads, read_errors, open_files, is.loads, is.failures,
			is.drops, is.resident, is.scanned, is.bytes, is.budget_bytes);
	}
	fclose(out);
	return text;
}

/* ---- operations ---------------------------------------------------------- */

static void op_lookup(fuse_req_t req, fuse_ino_t parent_ino, const char *name)
{
	const sf_node *parent, *child = NULL;
	struct fuse_entry_param entry;
	sf_error err = { 0 };
	int opened = 0;

	if (!(parent = get_node(req, parent_ino)))
		return;
	if (parent == &fs_state.stats_dir) {
		if (strcmp(name, "stats.json") == 0)
			child = &fs_state.stats_json;
		else if (strcmp(name, "metrics") == 0)
			child = &fs_state.metrics;
	} else if (parent->type != SF_NODE_DIR || is_virtual(parent)) {
		put_node(parent);
		fuse_reply_err(req, ENOTDIR);
		return;
	} else if (parent_ino == FUSE_ROOT_ID && strcmp(name, STATS_DIR) == 0) {
		child = &fs_state.stats_dir;
	} else {
		if (sf_store_open_dir(fs_state.store, parent, &err) != SF_OK) {
			put_node(parent);
			reply_error(req, &err);
			return;
		}
		opened = 1;
		child = sf_store_child(parent, name);
	}
	memset(&entry, 0, sizeof(entry));
	if (!child) {
		/* negative entries are cached too: the tree never changes */
		entry.entry_timeout = CACHE_TIMEOUT_SECONDS;
	} else {
		entry.ino = child->ino;
		entry.generation = 1;
		entry.attr_timeout = is_virtual(child) ? 0 : CACHE_TIMEOUT_SECONDS;
		entry.entry_timeout = CACHE_TIMEOUT_SECONDS;
		fill_stat(child, &entry.attr);
	}
	if (opened)
		sf_store_close_dir(fs_state.store, parent);
	put_node(parent);
	fuse_reply_entry(req, &entry);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	const sf_node *node = get_node(req, ino);
	struct stat st;

	(void)fi;
	if (!node)
		return;
	fill_stat(node, &st);
	put_node(node);
	fuse_reply_attr(req, &st, is_virtual(node) ? 0 : CACHE_TIMEOUT_SECONDS);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	const sf_node *node = get_node(req, ino);

	if (!node)
		return;
	if (node->type != SF_NODE_SYMLINK)
		fuse_reply_err(req, EINVAL);
	else
		fuse_reply_readlink(req, node->target); /* copied into the reply */
	put_node(node);
}

/* What an open file handle carries: the rendered text of a .stepfs file,
   or the offset a sequential reader will ask for next. */
typedef struct open_file {
	const sf_node *node;   /* pinned until release; NULL for .stepfs files */
	char *text;
	size_t len;
	uint64_t next_offset;
	uint64_t ahead_end;    /* file offset up to which read-ahead is queued */
	uint64_t ahead_window; /* its current size in bytes; 0 before the first */
} open_file;

/* ---- read-ahead ------------------------------------------------------------
 * A sequential reader's next frames are decompressed by background threads
 * while the current ones are copied out. Requests go through a ring; when
 * it is full the oldest request is dropped (read-ahead is only a hint, and
 * the newest hints are the ones ahead of the reader). */

#define PREFETCH_RING 64
/* Two threads, so that a cold sequential read decompresses on both cores
   of a small machine while the FUSE workers copy. */
#define PREFETCH_THREADS 2
/* How far ahead of a streaming reader frames are decompressed: the window
   starts at READ_AHEAD_MIN and doubles with each sequential read up to
   READ_AHEAD_MAX, and to an eighth of the cache shared among the open
   files, so that concurrent readers do not evict each other's frames.
   A deep window keeps both threads busy: with 1 MiB (four 256 KiB frames)
   a cold read of a 90 MB file waited on the frame it needed at almost
   every request; with 4-8 MiB it ran 10-25% faster (docs/BENCHMARKS.md). */
#define READ_AHEAD_MIN ((uint64_t)1 << 20)
#define READ_AHEAD_MAX ((uint64_t)8 << 20)

/* Folders whose index is loaded ahead: the lazy subfolders of a folder
   just opened. A walker (find, du, ls -R) opens them next; loading them
   on another core while it works through the listing hides most of the
   load. At most PREFETCH_DIRS wait at a time, the first ones found (a
   walker takes subfolders in order); the others load when opened. */
#define PREFETCH_DIRS 32

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread[PREFETCH_THREADS];
	int running, stop;
	uint32_t shard[PREFETCH_RING];
	uint64_t offset[PREFETCH_RING];
	unsigned head, tail;
	const sf_node *dir[PREFETCH_DIRS]; /* each held (pinned) until loaded */
	unsigned dir_head, dir_tail;
} prefetcher;

static void prefetch_push(uint32_t shard, uint64_t offset)
{
	pthread_mutex_lock(&prefetcher.lock);
	/* When the thread lags, the oldest hints go: a hint behind the reader
	   would only decompress again a frame the reader has finished with. */
	if (prefetcher.head - prefetcher.tail >= PREFETCH_RING)
		prefetcher.tail++;
	prefetcher.shard[prefetcher.head % PREFETCH_RING] = shard;
	prefetcher.offset[prefetcher.head % PREFETCH_RING] = offset;
	prefetcher.head++;
	pthread_cond_signal(&prefetcher.wake);
	pthread_mutex_unlock(&prefetcher.lock);
}

/* Queue the lazy subfolders of dir (just opened, so pinned) for loading.
   Each is held until its turn: the index it lives in stays loaded, and a
   load ahead never has to load its parent again first. */
static void prefetch_subdirs(const sf_node *dir)
{
	uint32_t i;

	if (!prefetcher.running || !dir->lazy_children)
		return;
	pthread_mutex_lock(&prefetcher.lock);
	for (i = 0; i < dir->child_count && prefetcher.dir_head - prefetcher.dir_tail < PREFETCH_DIRS; i++) {
		const sf_node *child = dir->children[i];

		if (sf_store_dir_pending(child)) {
			sf_store_hold(fs_state.store, child);
			prefetcher.dir[prefetcher.dir_head % PREFETCH_DIRS] = child;
			prefetcher.dir_head++;
		}
	}
	pthread_cond_broadcast(&prefetcher.wake);
	pthread_mutex_unlock(&prefetcher.lock);
}

static void *prefetch_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&prefetcher.lock);
	while (!prefetcher.stop) {
		uint32_t shard;
		uint64_t offset;

		if (prefetcher.dir_head != prefetcher.dir_tail) {
			const sf_node *dir = prefetcher.dir[prefetcher.dir_tail % PREFETCH_DIRS];
			sf_error err = { 0 };

			prefetcher.dir_tail++;
			pthread_mutex_unlock(&prefetcher.lock);
			/* a damaged index is reported here, once, as an open would;
			   the open that follows answers with the remembered error */
			if (sf_store_dir_pending(dir) && sf_store_load_dir_ahead(fs_state.store, dir, &err) != SF_OK)
				log_error(err.message);
			sf_store_release(fs_state.store, dir);
			pthread_mutex_lock(&prefetcher.lock);
			continue;
		}
		if (prefetcher.head == prefetcher.tail) {
			pthread_cond_wait(&prefetcher.wake, &prefetcher.lock);
			continue;
		}
		shard = prefetcher.shard[prefetcher.tail % PREFETCH_RING];
		offset = prefetcher.offset[prefetcher.tail % PREFETCH_RING];
		prefetcher.tail++;
		pthread_mutex_unlock(&prefetcher.lock);
		sf_store_prefetch(fs_state.store, shard, offset);
		pthread_mutex_lock(&prefetcher.lock);
	}
	pthread_mutex_unlock(&prefetcher.lock);
	return NULL;
}

static void prefetch_start(void)
{
	sigset_t all, old;

	pthread_mutex_init(&prefetcher.lock, NULL);
	pthread_cond_init(&prefetcher.wake, NULL);
	/* The prefetch threads block every signal: SIGTERM, SIGINT or SIGHUP
	   must reach a FUSE thread, whose read of /dev/fuse it interrupts so
	   the loop sees the session end; delivered to a prefetch thread it
	   would only mark the session ended and the daemon would wait for the
	   next request to notice. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	while (prefetcher.running < PREFETCH_THREADS &&
	       pthread_create(&prefetcher.thread[prefetcher.running], NULL, prefetch_main, NULL) == 0)
		prefetcher.running++;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void prefetch_stop(void)
{
	if (!prefetcher.running)
		return;
	pthread_mutex_lock(&prefetcher.lock);
	prefetcher.stop = 1;
	pthread_cond_broadcast(&prefetcher.wake);
	pthread_mutex_unlock(&prefetcher.lock);
	while (prefetcher.running > 0)
		pthread_join(prefetcher.thread[--prefetcher.running], NULL);
	while (prefetcher.dir_tail != prefetcher.dir_head)
		sf_store_release(fs_state.store, prefetcher.dir[prefetcher.dir_tail++ % PREFETCH_DIRS]);
}

/* The window for a reader's next sequential read (see READ_AHEAD_MIN). */
static uint64_t read_ahead_window(const open_file *of, uint64_t open_files)
{
	uint64_t window = __atomic_load_n(&of->ahead_window, __ATOMIC_RELAXED);
	uint64_t share = fs_state.cache_bytes / 8 / (open_files ? open_files : 1);

	window = window ? window * 2 : READ_AHEAD_MIN;
	if (window > READ_AHEAD_MAX)
		window = READ_AHEAD_MAX;
	if (window > share)
		window = share;
	return window < READ_AHEAD_MIN ? READ_AHEAD_MIN : window;
}

/* Queue the frames holding file bytes [from, to). A frame that a segment
   leaves early is followed by the bytes after it in the file's next
   segment; the frames skipped that way are read on demand. */
static void read_ahead(const sf_node *node, uint64_t from, uint64_t to)
{
	while (from < to && prefetcher.running) {
		uint32_t shard;
		uint64_t offset, next;

		if (!sf_store_locate(node, from, &shard, &offset))
			return;
		prefetch_push(shard, offset);
		next = sf_store_next_frame_offset(fs_state.store, shard, offset);
		if (next == UINT64_MAX || next <= offset)
			return;
		from += next - offset; /* the rest of this frame, if the segment goes on */
	}
}

/* End an open file handle: its pin, its text, the count of open files. */
static void close_handle(open_file *of)
{
	if (of) {
		if (of->node)
			sf_store_release(fs_state.store, of->node);
		free(of->text);
		free(of);
	}
	pthread_mutex_lock(&fs_state.lock);
	fs_state.open_files--;
	pthread_mutex_unlock(&fs_state.lock);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	const sf_node *node;
	open_file *of;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (!(node = get_node(req, ino)))
		return;
	if (node->type == SF_NODE_DIR) {
		put_node(node);
		fuse_reply_err(req, EISDIR);
		return;
	}
	of = calloc(1, sizeof(*of));
	if (!of) {
		put_node(node);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (node == &fs_state.stats_json || node == &fs_state.metrics) {
		if (!(of->text = render_stats(node == &fs_state.metrics))) {
			free(of);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		of->len = strlen(of->text);
		fi->direct_io = 1; /* its size changes from one open to the next */
	} else {
		of->node = node; /* the pin is the handle's until release */
		fi->keep_cache = 1;
	}
	fi->fh = (uint64_t)(uintptr_t)of;
	pthread_mutex_lock(&fs_state.lock);
	fs_state.open_files++;
	pthread_mutex_unlock(&fs_state.lock);
	if (fuse_reply_open(req, fi) != 0)
		close_handle(of); /* the open was interrupted: no release will come */
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	close_handle((open_file *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

#define STREAM_WINDOW ((uint64_t)4 << 20)

/* Reply buffers, shared by the worker threads: a read takes the smallest
   free one that fits and gives it back after its reply, so reads do not
   allocate (and fault in) fresh memory, and the buffers held are as many
   as reads at once plus REPLY_KEEP, not one of up to 1 MiB per worker. */
#define REPLY_KEEP 4
#define REPLY_MIN ((size_t)128 << 10)

typedef struct reply_buffer {
	struct reply_buffer *next;
	size_t capacity;
	char data[];
} reply_buffer;

static struct {
	pthread_mutex_t lock;
	reply_buffer *free; /* most recently given back first */
} replies = { PTHREAD_MUTEX_INITIALIZER, NULL };

static reply_buffer *reply_take(size_t size)
{
	reply_buffer **link, **best = NULL, *rb;

	pthread_mutex_lock(&replies.lock);
	for (link = &replies.free; *link; link = &(*link)->next)
		if ((*link)->capacity >= size && (!best || (*link)->capacity < (*best)->capacity))
			best = link;
	rb = best ? *best : NULL;
	if (rb)
		*best = rb->next;
	pthread_mutex_unlock(&replies.lock);
	if (!rb) {
		size_t capacity = size > REPLY_MIN ? size : REPLY_MIN;

		rb = malloc(sizeof(*rb) + capacity);
		if (rb)
			rb->capacity = capacity;
	}
	return rb;
}

static void reply_give(reply_buffer *rb)
{
	reply_buffer *extra = NULL, *p;
	unsigned kept = 0;

	pthread_mutex_lock(&replies.lock);
	rb->next = replies.free;
	replies.free = rb;
	for (p = replies.free; p; p = p->next)
		if (++kept == REPLY_KEEP) {
			extra = p->next;
			p->next = NULL;
			break;
		}
	pthread_mutex_unlock(&replies.lock);
	while (extra) {
		p = extra->next;
		free(extra);
		extra = p;
	}
}

static void reply_pool_free(void)
{
	reply_buffer *p;

	while ((p = replies.free)) {
		replies.free = p->next;
		free(p);
	}
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
		    struct fuse_file_info *fi)
{
	open_file *of = (open_file *)(uintptr_t)fi->fh;
	const sf_node *node = of ? of->node : NULL;
	sf_error err = { 0 };
	size_t got = 0;
	sf_err rc;
	int streaming;
	reply_buffer *rb;
	char *buf;

	if (of && of->text) {
		/* From a copy: once the kernel has the reply, the reader may
		   close the file and a release on another thread free the
		   text while the write that carried it is still returning. */
		size_t n = (uint64_t)offset >= of->len ? 0
			   : size < of->len - (size_t)offset ? size : of->len - (size_t)offset;

		if (!(rb = reply_take(n))) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		memcpy(rb->data, of->text + (n ? offset : 0), n);
		fuse_reply_buf(req, rb->data, n);
		reply_give(rb);
		return;
	}
	(void)ino;
	if (!node) {
		fuse_reply_err(req, EBADF);
		return;
	}
	rb = reply_take(size);
	if (!rb) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* a pin of its own: once the reply is sent, a release on another
	   thread may free the handle and its pin, and read-ahead below still
	   uses the node */
	sf_store_hold(fs_state.store, node);
	buf = rb->data;
	/* A reader that continues near where it stopped is streaming (the
	   kernel's read-ahead requests may arrive out of order, hence the
	   window): the frames it finishes are unlikely to be wanted again soon
	   (the kernel keeps the pages), so their buffers are recycled first. */
	if (of && offset > 0) {
		uint64_t last = __atomic_load_n(&of->next_offset, __ATOMIC_RELAXED);

		streaming = (uint64_t)offset + STREAM_WINDOW >= last && (uint64_t)offset <= last + STREAM_WINDOW;
	} else {
		streaming = 0;
	}
	rc = streaming ? sf_store_read_sequential(fs_state.store, node, (uint64_t)offset, size, buf, &got, &err)
		       : sf_store_read(fs_state.store, node, (uint64_t)offset, size, buf, &got, &err);
	if (rc != SF_OK) {
		pthread_mutex_lock(&fs_state.lock);
		fs_state.read_errors++;
		pthread_mutex_unlock(&fs_state.lock);
		reply_give(rb);
		reply_error(req, &err);
		sf_store_release(fs_state.store, node);
	} else {
		int sequential = 0;
		uint64_t open_files;

		pthread_mutex_lock(&fs_state.lock);
		fs_state.reads++;
		fs_state.bytes_served += got;
		open_files = fs_state.open_files;
		pthread_mutex_unlock(&fs_state.lock);
		/* Before the reply: once it is sent, the file may be closed and
		   its handle freed by a release on another thread. */
		uint64_t end = (uint64_t)offset + got, ahead_from = 0, ahead_to = 0;

		if (of) {
			uint64_t expected = __atomic_exchange_n(&of->next_offset, end, __ATOMIC_RELAXED);

			sequential = (streaming || expected == (uint64_t)offset) && got == size;
		}
		if (sequential && prefetcher.running) {
			/* Concurrent reads of one file may race on these two
			   fields: the worst outcome is a hint given twice or
			   a window that grows one step less. */
			uint64_t window = read_ahead_window(of, open_files);
			uint64_t queued = __atomic_load_n(&of->ahead_end, __ATOMIC_RELAXED);

			__atomic_store_n(&of->ahead_window, window, __ATOMIC_RELAXED);
			/* behind the reader, or far ahead of it after a seek
			   back: queue from where it reads now */
			ahead_from = queued > end && queued <= end + window ? queued : end;
			ahead_to = end + window;
			if (ahead_to > ahead_from)
				__atomic_store_n(&of->ahead_end, ahead_to, __ATOMIC_RELAXED);
		} else if (of) {
			/* a jump: the next run starts a small window again */
			__atomic_store_n(&of->ahead_window, 0, __ATOMIC_RELAXED);
			__atomic_store_n(&of->ahead_end, 0, __ATOMIC_RELAXED);
		}
		fuse_reply_buf(req, buf, got); /* written to the device: buf is free again */
		reply_give(rb);
		if (ahead_to > ahead_from)
			read_ahead(node, ahead_from, ahead_to);
		sf_store_release(fs_state.store, node);
	}
}

/* An open folder's handle is its node, whose children stay pinned until
   releasedir (0 for .stepfs). */
static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	const sf_node *node = get_node(req, ino);
	sf_error err = { 0 };

	if (!node)
		return;
	if (node->type != SF_NODE_DIR) {
		put_node(node);
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	fi->fh = 0;
	if (!is_virtual(node)) {
		if (sf_store_open_dir(fs_state.store, node, &err) != SF_OK) {
			put_node(node);
			reply_error(req, &err);
			return;
		}
		/* the children's pin holds the folder too */
		put_node(node);
		fi->fh = (uint64_t)(uintptr_t)node;
		prefetch_subdirs(node);
	}
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	if (fuse_reply_open(req, fi) != 0 && fi->fh)
		sf_store_close_dir(fs_state.store, node); /* interrupted: no releasedir */
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	if (fi->fh)
		sf_store_close_dir(fs_state.store, (const sf_node *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

/* Entry i of a directory listing: ".", "..", children, then .stepfs at the root. */
static const sf_node *dir_entry(const sf_node *dir, fuse_ino_t ino, size_t i, const char **name)
{
	size_t count;

	if (i == 0) {
		*name = ".";
		return dir;
	}
	if (i == 1) {
		*name = "..";
		return dir->parent ? dir->parent : dir;
	}
	i -= 2;
	if (dir == &fs_state.stats_dir) {
		if (i == 0) {
			*name = "stats.json";
			return &fs_state.stats_json;
		}
		if (i == 1) {
			*name = "metrics";
			return &fs_state.metrics;
		}
		return NULL;
	}
	count = dir->child_count;
	if (i < count) {
		*name = dir->children[i]->name;
		return dir->children[i];
	}
	if (ino == FUSE_ROOT_ID && i == count) {
		*name = STATS_DIR;
		return &fs_state.stats_dir;
	}
	return NULL;
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
		       struct fuse_file_info *fi)
{
	const sf_node *dir = fi->fh ? (const sf_node *)(uintptr_t)fi->fh : &fs_state.stats_dir, *child;
	char *buf = malloc(size ? size : 1);
	size_t used = 0, i = (size_t)offset;
	const char *name;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	while ((child = dir_entry(dir, ino, i, &name)) != NULL) {
		struct stat st;
		size_t need;

		memset(&st, 0, sizeof(st));
		st.st_ino = child->ino;
		st.st_mode = child->type == SF_NODE_DIR ? S_IFDIR : child->type == SF_NODE_SYMLINK ? S_IFLNK : S_IFREG;
		need = fuse_add_direntry(req, buf + used, size - used, name, &st, (off_t)(i + 1));
		if (need > size - used)
			break;
		used += need;
		i++;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs st;
		uint32_t i;
	uint64_t bytes = 0;

	(void)ino;
	for (i = 0; i < sf_store_shard_count(fs_state.store); i++) {
		sf_shard_info info;

		sf_store_shard_info(fs_state.store, i, &info);
		bytes += info.compressed_bytes;
	}
	memset(&st, 0, sizeof(st));
	st.f_bsize = 4096;
	st.f_frsize = 4096;
	st.f_blocks = (fsblkcnt_t)((bytes + 4095) / 4096);
	st.f_namemax = SF_MAX_NAME_BYTES;
	st.f_flag = ST_RDONLY;
	fuse_reply_statfs(req, &st);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* No splice: replies come from malloc'd buffers that are freed or
	   reused right after fuse_reply_buf(), which a gifted or moved page
	   must not be. */
	conn->want &= ~(FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	conn->max_readahead = 1u << 20;
}

/* Writes never reach here on a read-only mount; answer plainly if they do. */
static void op_erofs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			     struct fuse_file_info *fi)
{
	(void)ino; (void)attr; (void)to_set; (void)fi;
	fuse_reply_err(req, EROFS);
}

static void op_erofs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			    struct fuse_file_info *fi)
{
	(void)parent; (void)name; (void)mode; (void)fi;
	fuse_reply_err(req, EROFS);
}

static void op_erofs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	(void)parent; (void)name; (void)mode;
	fuse_reply_err(req, EROFS);
}

static void op_erofs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent; (void)name;
	fuse_reply_err(req, EROFS);
}

static const struct fuse_lowlevel_ops operations = {
	.init = op_init,
	.lookup = op_lookup,
	.getattr = op_getattr,
	.readlink = op_readlink,
	.open = op_open,
	.read = op_read,
	.release = op_release,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.releasedir = op_releasedir,
	.statfs = op_statfs,
	.setattr = op_erofs_setattr,
	.create = op_erofs_create,
	.mkdir = op_erofs_mkdir,
	.unlink = op_erofs_unlink,
	.rmdir = op_erofs_unlink,
};

/* ---- command line -------------------------------------------------------- */

typedef struct options {
	char *store;
	char *config_path;
	unsigned long cache_mib, metadata_mib;
	int show_help, show_version;
} options;

enum { KEY_HELP, KEY_VERSION };

static const struct fuse_opt option_spec[] = {
	{ "cache_size=%lu", offsetof(options, cache_mib), 0 },
	{ "metadata_size=%lu", offsetof(options, metadata_mib), 0 },
	{ "config=%s", offsetof(options, config_path), 0 },
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_END
};

static int option_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	options *opts = data;

	(void)outargs;
	if (key == KEY_HELP) {
		opts->show_help = 1;
		return 0;
	}
	if (key == KEY_VERSION) {
		opts->show_version = 1;
		return 0;
	}
	if (key == FUSE_OPT_KEY_NONOPT && !opts->store) {
		opts->store = strdup(arg);
		return 0;
	}
	return 1;
}

static void usage(FILE *out)
{
	fputs("usage: stepfs STORE MOUNTPOINT [-f] [-d] [-s] [-o OPTION[,OPTION...]]\n"
	      "\n"
	      "Mounts a stepfs store read-only. Unmount with: fusermount3 -u MOUNTPOINT\n"
	      "\n"
	      "options:\n"
	      "  -f                  stay in the foreground\n"
	      "  -d                  debug output (implies -f)\n"
	      "  -s                  one thread\n"
	      "  -o cache_size=MIB   decompressed-frame cache (default 64)\n"
	      "  -o metadata_size=MIB  loaded indexes kept before the least recently\n"
	      "                      used are dropped (default 16)\n"
	      "  -o config=FILE      read settings from FILE (see docs/CONFIG.md)\n"
	      "  -o allow_other      let other users read the mount (needs user_allow_other\n"
	      "                      in /etc/fuse.conf when not root)\n"
	      "  -o max_threads=N    worker threads (default 10)\n"
	      "  other -o options are FUSE mount options (see mount.fuse3(8))\n"
	      "\n"
	      "exit codes: 0 unmounted cleanly, 1 the store could not be opened or mounted,\n"
	      "  2 usage error\n",
	      out);
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts cmdline;
	struct fuse_loop_config *loop_config = NULL;
	struct fuse_session *session = NULL;
	sf_store_options store_options;
	options opts;
	sf_error err = { 0 };
	size_t config_cache_bytes = (size_t)64 << 20, config_metadata_bytes = (size_t)16 << 20;
	int rc = 1;

#ifdef M_ARENA_MAX
	/* FUSE workers come and go; one malloc arena each would keep memory
	   the frame cache already bounds. */
	mallopt(M_ARENA_MAX, 2);
#endif
	memset(&opts, 0, sizeof(opts));
	memset(&cmdline, 0, sizeof(cmdline));
	if (fuse_opt_parse(&args, &opts, option_spec, option_proc) != 0)
		return 2;
	if (opts.show_help) {
		usage(stdout);
		fuse_opt_free_args(&args);
		return 0;
	}
	if (opts.show_version) {
		printf("stepfs %s (store format %d.%d, libfuse %s)\n", SF_VERSION, SF_FORMAT_MAJOR,
		       SF_FORMAT_MINOR, fuse_pkgversion());
		fuse_opt_free_args(&args);
		return 0;
	}
	{
		sf_config config;
		char threads_option[32];

		sf_config_init_defaults(&config);
		if (sf_config_find_and_load(&config, opts.config_path, &err) != SF_OK) {
			fprintf(stderr, "stepfs: %s\n", err.message);
			sf_config_release(&config);
			rc = 2;
			goto out;
		}
		/* before the user's own -o options, so theirs win */
		if (config.mount_threads > 0) {
			snprintf(threads_option, sizeof(threads_option), "-omax_threads=%d", config.mount_threads);
			fuse_opt_insert_arg(&args, 1, threads_option);
		}
		config_cache_bytes = (size_t)config.mount_cache_bytes;
		config_metadata_bytes = (size_t)config.mount_metadata_bytes;
		sf_config_release(&config);
	}
	if (fuse_parse_cmdline(&args, &cmdline) != 0 || !opts.store || !cmdline.mountpoint) {
		usage(stderr);
		rc = 2;
		goto out;
	}
	fuse_opt_add_arg(&args, "-oro");
	fuse_opt_add_arg(&args, "-odefault_permissions");
	{
		char fsname[PATH_MAX + 16];

		char real[PATH_MAX];

		/* the absolute path, so `stepstore gc` can recognise the mount */
		snprintf(fsname, sizeof(fsname), "-ofsname=%s", realpath(opts.store, real) ? real : opts.store);
		fuse_opt_add_arg(&args, fsname);
		fuse_opt_add_arg(&args, "-osubtype=stepfs");
	}
	openlog("stepfs", LOG_PID, LOG_DAEMON);
	memset(&store_options, 0, sizeof(store_options));
	store_options.cache_bytes = opts.cache_mib ? (size_t)opts.cache_mib << 20 : config_cache_bytes;
	store_options.metadata_bytes = opts.metadata_mib ? (size_t)opts.metadata_mib << 20 : config_metadata_bytes;
	fs_state.cache_bytes = store_options.cache_bytes;
	{
		/* the daemon changes to "/": open the store by its absolute path */
		char *absolute = realpath(opts.store, NULL);

		if (absolute) {
			free(opts.store);
			opts.store = absolute;
		}
	}
	if (sf_store_open(&fs_state.store, opts.store, &store_options, &err) != SF_OK) {
		fprintf(stderr, "stepfs: %s\n", err.message);
		goto out;
	}
	fs_state.store_path = opts.store;
	fs_state.uid = getuid();
	fs_state.gid = getgid();
	fs_state.foreground = cmdline.foreground;
	pthread_mutex_init(&fs_state.lock, NULL);
	fs_state.stats_dir.name = stats_dir_name;
	fs_state.stats_dir.type = SF_NODE_DIR;
	fs_state.stats_dir.mode = 0555;
	fs_state.stats_dir.ino = UINT64_MAX - 1;
	fs_state.stats_dir.loaded = 1;
	fs_state.stats_dir.parent = (sf_node *)(uintptr_t)sf_store_root(fs_state.store);
	fs_state.stats_dir.mtime_sec = fs_state.stats_dir.parent->mtime_sec;
	fs_state.stats_dir.mtime_nsec = fs_state.stats_dir.parent->mtime_nsec;
	fs_state.stats_json.name = stats_json_name;
	fs_state.stats_json.type = SF_NODE_FILE;
	fs_state.stats_json.mode = 0444;
	fs_state.stats_json.ino = UINT64_MAX - 2;
	fs_state.stats_json.parent = &fs_state.stats_dir;
	fs_state.stats_json.mtime_sec = fs_state.stats_dir.mtime_sec;
	fs_state.metrics = fs_state.stats_json;
	fs_state.metrics.name = metrics_name;
	fs_state.metrics.ino = UINT64_MAX - 3;

	session = fuse_session_new(&args, &operations, sizeof(operations), NULL);
	if (!session)
		goto out;
	if (fuse_set_signal_handlers(session) != 0)
		goto out;
	if (fuse_session_mount(session, cmdline.mountpoint) != 0) {
		fprintf(stderr, "stepfs: cannot mount '%s' on '%s'\n", opts.store, cmdline.mountpoint);
		fuse_remove_signal_handlers(session);
		goto out;
	}
	fuse_daemonize(cmdline.foreground);
	prefetch_start(); /* after fork: threads do not survive it */
	if (cmdline.singlethread) {
		rc = fuse_session_loop(session);
	} else {
		loop_config = fuse_loop_cfg_create();
		fuse_loop_cfg_set_clone_fd(loop_config, cmdline.clone_fd);
		if (cmdline.max_threads >= 1 && cmdline.max_threads <= 100000)
			fuse_loop_cfg_set_max_threads(loop_config, cmdline.max_threads);
		if (cmdline.max_idle_threads <= 100000)
			fuse_loop_cfg_set_idle_threads(loop_config, cmdline.max_idle_threads);
		rc = fuse_session_loop_mt(session, loop_config);
	}
	/* The loop returns the number of the signal that ended it (SIGTERM,
	   SIGINT, SIGHUP: libfuse's handlers unmount first), or -errno. */
	rc = rc == 0 || rc == SIGTERM || rc == SIGINT || rc == SIGHUP ? 0 : 1;
	prefetch_stop();
	fuse_session_unmount(session);
	fuse_remove_signal_handlers(session);
out:
	if (loop_config)
		fuse_loop_cfg_destroy(loop_config);
	if (session)
		fuse_session_destroy(session);
	sf_store_free(fs_state.store);
	reply_pool_free();
	free(cmdline.mountpoint);
	free(opts.store);
	free(opts.config_path);
	fuse_opt_free_args(&args);
	return rc;
}
