/*
 * sf_pack.c - the packer: walk the source, write shards, build the views,
 * write the indexes and store.json, and commit the store atomically.
 */
#include "sf_pack.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "sf_format.h"
#include "sf_index.h"
#include "sf_jscan.h"
#include "sf_pipeline_yaml.h"
#include "sf_seekable.h"
#include "sf_store.h"
#include "sf_util.h"
#include "sf_xxhash.h"

#define COPY_BUFFER_BYTES (1u << 20)
/* A run of multi-line rows is served through segments of about this size. */
#define LIST_SEGMENT_BYTES (64u * 1024u)
#define MAX_SOURCE_DEPTH 256

/* ---- growable vectors ---------------------------------------------------- */

typedef struct seg_vec {
	sf_segment *items;
	size_t count, capacity;
	uint64_t total;
	size_t barrier;        /* never merge into items before this one */
} seg_vec;

/* Append a segment, merging it into the previous one when contiguous.
   List segments are never merged: each is cut short on purpose (see
   emit_row). */
static int seg_push(seg_vec *vec, uint32_t shard, uint64_t offset, uint64_t length, uint8_t subst)
{
	sf_segment *last = vec->count ? &vec->items[vec->count - 1] : NULL;

	if (length == 0)
		return 1;
	vec->total += length;
	if (last && vec->count > vec->barrier && last->shard == shard && last->subst == subst &&
	    subst != SF_SUBST_LIST_LINES && last->shard_offset + last->length == offset) {
		last->length += length;
		return 1;
	}
	if (vec->count == vec->capacity) {
		size_t cap = vec->capacity ? vec->capacity * 2 : 4;
		sf_segment *grown = realloc(vec->items, cap * sizeof(*grown));

		if (!grown)
			return 0;
		vec->items = grown;
		vec->capacity = cap;
	}
	vec->items[vec->count].shard = shard;
	vec->items[vec->count].shard_offset = offset;
	vec->items[vec->count].length = length;
	vec->items[vec->count].subst = subst;
	vec->count++;
	return 1;
}

#define VEC_PUSH(array, count, capacity, value, ok)                                   \
	do {                                                                          \
		(ok) = 1;                                                             \
		if ((count) == (capacity)) {                                          \
			size_t cap_ = (capacity) ? (capacity) * 2 : 16;               \
			void *grown_ = realloc((array), cap_ * sizeof(*(array)));     \
			if (!grown_) {                                                \
				(ok) = 0;                                             \
				break;                                                \
			}                                                             \
			(array) = grown_;                                             \
			(capacity) = cap_;                                            \
		}                                                                     \
		(array)[(count)++] = (value);                                         \
	} while (0)

/* ---- the source tree ----------------------------------------------------- */

/* What the packer does with a file (see classify()). */
enum {
	ROLE_PLAIN,            /* bytes as they are */
	ROLE_WHOLE_BATCH,      /* the file is one batch of group `group` */
	ROLE_PER_STEP_FILE,    /* batch_manager_steps/<step>.json of the per-step layout */
	ROLE_PER_STEP_MANAGER, /* batch_manager.json of the per-step layout */
	ROLE_MONOLITHIC,       /* batch_manager.json holding everything */
	ROLE_SPLIT_JSON,       /* split layout: step_<n>_data.json, a list of rows */
	ROLE_SPLIT_JSONL       /* split layout: step_<n>_data.jsonl, a row per line */
};

typedef struct src_entry {
	char *path;            /* relative to SRC, raw bytes */
	sf_node_type type;
	uint32_t mode;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint64_t size;
	char *target;
	seg_vec segs;
	uint64_t xxh64;
	int role;
	long group;            /* ROLE_WHOLE_BATCH, ROLE_PER_STEP_FILE */
	long execution;        /* the execution whose layout gave the role */
	char *batch_name;      /* ROLE_WHOLE_BATCH: its name under batches/ */
	const char *base;      /* outside SRC (a lone execution's steps_data): the
				  folder path is relative to; NULL for SRC */
	uint64_t seq;          /* ROLE_WHOLE_BATCH: number in its file name */
} src_entry;

struct batch_rec;

/* One step's data: its batches, its rows, its chain of shards. */
typedef struct step_group {
	char *key;             /* steps_data folder, or execution folder + '\n' + step name */
	char *label;           /* shard label */
	struct batch_rec *batches;
	size_t batch_count, batch_capacity;
	seg_vec step_json;     /* monolithic: the step's own object */
	int has_step_json;
	int64_t step_json_mtime_sec;
	uint32_t step_json_mtime_nsec;
	seg_vec rows_segs;     /* rows.jsonl, assembled once every batch is in */
	uint64_t rows, batch_bytes, stored_bytes;
	uint64_t expected_bytes; /* source bytes of the files that are the step's alone */
	long shard;            /* the open shard, or -1 */
	long *shard_ids;
	size_t shard_id_count, shard_id_capacity;
	size_t *extras;        /* split layout: other files of the step, shown in step_N/ */
	size_t extra_count, extra_capacity;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
} step_group;

typedef struct out_shard {
	char *file;
	const char *kind;
	char *label;
	int fd;
	sf_seek_writer *writer;
	uint64_t compressed_bytes;
	uint32_t frames;
	uint64_t content_bytes;
	json_t *dictionary;    /* store.json "dictionary" object, or NULL */
	size_t dict_bytes;     /* size of shards/NNNNN.dict, 0 when none */
} out_shard;

typedef struct packer {
	const sf_pack_options *options;
	const char *src;
	char *tmp;                 /* temporary store directory */
	src_entry *entries;
	size_t entry_count, entry_capacity;
	step_group *groups;
	size_t group_count, group_capacity;
	out_shard *shards;
	size_t shard_count, shard_capacity;
	long files_shard, raw_shard;
	json_t *indexes;           /* array of {"file", "xxh64"} */
	json_t *step_summaries;    /* for store.json */
	json_t *execution_summaries;
	const char *layout;
	unsigned char *buffer;
	uint64_t total_bytes, done_bytes;
	struct timespec started, last_draw;
	sf_pack_summary *summary;
	uint64_t rows_total, batches_total, steps_total;
	size_t batch_order;
	char *external_root;       /* a lone execution's pipeline folder, or NULL */
	int list_lines_used;       /* a segment uses SF_SUBST_LIST_LINES: format 2.1 */
	int dict_zst_used;         /* a dictionary is stored compressed: format 2.2 */
	sf_jscan *scanner;         /* reused for every JSON file (packing thread) */
	pthread_t main_thread;     /* the one that draws progress */
	pthread_mutex_t shard_lock; /* shard_open while two threads pack batches */
	int shard_lock_ready;
	int parallel;              /* a second thread is packing batch files */
	int stop;                  /* the other packing thread failed: stop too */
	uint64_t shared_json_bytes; /* files holding several steps' rows (monolithic,
				       per-step manager): a step's expected bytes
				       when no file is its alone */
	struct index_writer *index_writer; /* see write_index_text */
} packer;

static int cancelled(const packer *p)
{
	return (p->options->cancel && __atomic_load_n(p->options->cancel, __ATOMIC_RELAXED)) ||
	       __atomic_load_n(&p->stop, __ATOMIC_RELAXED);
}

static sf_err check_cancel(const packer *p, sf_error *err)
{
	if (cancelled(p))
		return sf_error_set(err, SF_ERR_IO, "interrupted");
	return SF_OK;
}

/* ---- progress ------------------------------------------------------------ */

static double seconds_between(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static void draw_progress(packer *p, int final)
{
	uint64_t done;
	struct timespec now;
	double elapsed, rate, left;
	int width = 30, filled;
	char bar[64];

	/* one line on the terminal: the packing thread draws it */
	if (!p->options->progress || (p->parallel && !pthread_equal(pthread_self(), p->main_thread)))
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!final && seconds_between(&p->last_draw, &now) < 0.25)
		return;
	p->last_draw = now;
	elapsed = seconds_between(&p->started, &now);
	done = __atomic_load_n(&p->done_bytes, __ATOMIC_RELAXED); /* the other lane adds to it */
	rate = elapsed > 0 ? (double)done / elapsed : 0;
	left = rate > 0 && done < p->total_bytes ? (double)(p->total_bytes - done) / rate : 0;
	filled = p->total_bytes ? (int)((double)width * (double)done / (double)p->total_bytes) : width;
	if (filled > width)
		filled = width;
	memset(bar, '#', (size_t)filled);
	memset(bar + filled, '.', (size_t)(width - filled));
	bar[width] = '\0';
	fprintf(stderr, "\rstepstore: [%s] %6.1f / %.1f MiB  %6.1f MiB/s  %4.0fs left ", bar,
		(double)done / 1048576.0, (double)p->total_bytes / 1048576.0,
		rate / 1048576.0, final ? 0.0 : left);
	if (final)
		fputc('\n', stderr);
}

/* ---- walking the source -------------------------------------------------- */

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static sf_err add_entry(packer *p, const char *rel, const struct stat *st, sf_error *err)
{
	src_entry entry;
	int ok;

	memset(&entry, 0, sizeof(entry));
	entry.path = sf_strdup(rel);
	entry.mode = st->st_mode & 07777;
	entry.mtime_sec = st->st_mtim.tv_sec;
	entry.mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
	entry.group = -1;
	if (S_ISDIR(st->st_mode)) {
		entry.type = SF_NODE_DIR;
	} else if (S_ISREG(st->st_mode)) {
		entry.type = SF_NODE_FILE;
		entry.size = (uint64_t)st->st_size;
	} else {
		entry.type = SF_NODE_SYMLINK;
	}
	if (!entry.path)
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	VEC_PUSH(p->entries, p->entry_count, p->entry_capacity, entry, ok);
	if (!ok) {
		free(entry.path);
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	}
	return SF_OK;
}

/* What walk needs of each name of a folder: its lstat, and whether a
   regular file can be read. A folder of many names has half of them
   looked up on a second thread (a steps_data folder of 20,000 batch
   files spent 40 ms in these two calls). */
#define WALK_SPLIT_NAMES 512

typedef struct name_stat {
	struct stat st;
	int stat_errno;    /* fstatat failed with it */
	int unreadable;    /* a regular file faccessat refused with EACCES */
} name_stat;

typedef struct stat_range {
	int dirfd;
	char **names;
	name_stat *out;
	size_t from, to;
} stat_range;

static void *stat_names(void *arg)
{
	stat_range *r = arg;
	size_t i;

	for (i = r->from; i < r->to; i++) {
		name_stat *ns = &r->out[i];

		if (fstatat(r->dirfd, r->names[i], &ns->st, AT_SYMLINK_NOFOLLOW) != 0)
			ns->stat_errno = errno;
		else if (S_ISREG(ns->st.st_mode) && faccessat(r->dirfd, r->names[i], R_OK, 0) != 0 && errno == EACCES)
			ns->unreadable = 1;
	}
	return NULL;
}

/* Look up count names of the open folder dirfd into out (zeroed). */
static void stat_folder(packer *p, int dirfd, char **names, size_t count, name_stat *out)
{
	stat_range first = { dirfd, names, out, 0, count }, second;
	pthread_t thread;

	if (count >= WALK_SPLIT_NAMES && p->options->threads >= 2) {
		first.to = count / 2;
		second = first;
		second.from = count / 2;
		second.to = count;
		if (pthread_create(&thread, NULL, stat_names, &second) == 0) {
			stat_names(&first);
			pthread_join(thread, NULL);
			return;
		}
		first.to = count;
	}
	stat_names(&first);
}

static sf_err walk(packer *p, const char *rel, int depth, sf_error *err)
{
	char *full = *rel ? sf_path_join(p->src, rel) : sf_strdup(p->src);
	DIR *dir = NULL;
	struct dirent *d;
	char **names = NULL;
	name_stat *stats = NULL;
	size_t count = 0, capacity = 0, i;
	sf_err rc = SF_OK;
	int ok;

	if (!full)
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	if (depth > MAX_SOURCE_DEPTH) {
		rc = sf_error_set(err, SF_ERR_LIMIT, "'%s': folders nested deeper than %d", full,
				  MAX_SOURCE_DEPTH);
		goto out;
	}
	dir = opendir(full);
	if (!dir) {
		rc = sf_error_io(err, errno, "'%s': cannot read folder", full);
		goto out;
	}
	while ((errno = 0, d = readdir(dir)) != NULL) {
		char *name;

		if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
			continue;
		name = sf_strdup(d->d_name);
		if (!name) {
			rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
			goto out;
		}
		VEC_PUSH(names, count, capacity, name, ok);
		if (!ok) {
			free(name);
			rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
			goto out;
		}
	}
	if (errno) {
		rc = sf_error_io(err, errno, "'%s': cannot read folder", full);
		goto out;
	}
	if (count > 1)
		qsort(names, count, sizeof(*names), compare_names);
	/* each name is looked up in its open folder, not along its whole
	   path again: a pack of 51,792 files spent most of its walk there */
	stats = count ? calloc(count, sizeof(*stats)) : NULL;
	if (count && !stats) {
		rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		goto out;
	}
	stat_folder(p, dirfd(dir), names, count, stats);
	for (i = 0; i < count && rc == SF_OK; i++) {
		char *child_rel = *rel ? sf_path_join(rel, names[i]) : sf_strdup(names[i]);
		char *child_full = child_rel ? sf_path_join(p->src, child_rel) : NULL;
		const struct stat *st = &stats[i].st;

		if (!child_full) {
			free(child_rel);
			rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
			break;
		}
		if (strlen(child_rel) > SF_MAX_PATH_BYTES) {
			rc = sf_error_set(err, SF_ERR_LIMIT, "'%s': path longer than %d bytes", child_full,
					  SF_MAX_PATH_BYTES);
		} else if (stats[i].stat_errno) {
			rc = sf_error_io(err, stats[i].stat_errno, "'%s': cannot stat", child_full);
		} else if (S_ISDIR(st->st_mode)) {
			rc = add_entry(p, child_rel, st, err);
			if (rc == SF_OK)
				rc = walk(p, child_rel, depth + 1, err);
		} else if (S_ISREG(st->st_mode)) {
			if (stats[i].unreadable)
				rc = sf_error_io(err, EACCES, "'%s': cannot read", child_full);
			else {
				rc = add_entry(p, child_rel, st, err);
				p->total_bytes += (uint64_t)st->st_size;
			}
		} else if (S_ISLNK(st->st_mode)) {
			char target[PATH_MAX + 1];
			ssize_t n = readlinkat(dirfd(dir), names[i], target, PATH_MAX);

			if (n < 0) {
				rc = sf_error_io(err, errno, "'%s': cannot read symlink", child_full);
			} else {
				target[n] = '\0';
				if ((size_t)n != strlen(target)) {
					rc = sf_error_set(err, SF_ERR_UNSUPPORTED, "'%s': symlink target holds a NUL byte",
							  child_full);
				} else {
					rc = add_entry(p, child_rel, st, err);
					if (rc == SF_OK) {
						p->entries[p->entry_count - 1].target = sf_strdup(target);
						p->entries[p->entry_count - 1].size = (uint64_t)n;
					}
				}
			}
		} else {
			rc = sf_error_set(err, SF_ERR_UNSUPPORTED,
					  "'%s': not a regular file, folder or symlink (FIFOs, sockets and devices cannot be packed)",
					  child_full);
		}
		free(child_rel);
		free(child_full);
	}
out:
	free(stats);
	for (i = 0; i < count; i++)
		free(names[i]);
	free(names);
	if (dir)
		closedir(dir);
	free(full);
	return rc;
}

/* ---- output shards ------------------------------------------------------- */

static sf_err shard_open_locked(packer *p, const char *kind, const char *label, int level,
				uint64_t expected, long *id_out, sf_error *err);

/* Open the next shard. While two threads pack batch files, p->shards has
   room reserved (pack_batches), so it never moves under the other thread. */
static sf_err shard_open(packer *p, const char *kind, const char *label, int level,
			 uint64_t expected, long *id_out, sf_error *err)
{
	sf_err rc;

	if (p->parallel)
		pthread_mutex_lock(&p->shard_lock);
	if (p->parallel && p->shard_count == p->shard_capacity)
		rc = sf_error_set(err, SF_ERR_LIMIT, "more shards than reserved for packing in parallel");
	else
		rc = shard_open_locked(p, kind, label, level, expected, id_out, err);
	if (p->parallel)
		pthread_mutex_unlock(&p->shard_lock);
	return rc;
}

static sf_err shard_open_locked(packer *p, const char *kind, const char *label, int level,
				uint64_t expected, long *id_out, sf_error *err)
{
	out_shard shard;
	sf_seek_writer_options wo;
	char name[64];
	char *full;
	sf_err rc;
	int ok;

	memset(&shard, 0, sizeof(shard));
	snprintf(name, sizeof(name), "%s/%05zu.zst", SF_STORE_SHARD_DIR, p->shard_count);
	shard.file = sf_strdup(name);
	shard.kind = kind;
	shard.label = sf_strdup(label ? label : "");
	full = sf_path_join(p->tmp, name);
	if (!shard.file || !shard.label || !full) {
		free(full);
		free(shard.file);
		free(shard.label);
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	}
	shard.fd = open(full, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (shard.fd < 0) {
		rc = sf_error_io(err, errno, "'%s': cannot create shard", full);
		free(full);
		free(shard.file);
		free(shard.label);
		return rc;
	}
	memset(&wo, 0, sizeof(wo));
	wo.level = level;
	/* Stored files do not compress; a dictionary would not help them. */
	wo.dictionary = strcmp(kind, "raw") != 0 ? p->options->dictionary : SF_SEEK_DICT_NEVER;
	wo.frame_bytes = p->options->frame_bytes;
	wo.threads = p->options->threads;
	wo.long_distance = p->options->long_distance;
	wo.expected_bytes = expected < p->options->shard_bytes ? expected : p->options->shard_bytes;
	rc = sf_seek_writer_create(&shard.writer, shard.fd, full, &wo, err);
	free(full);
	if (rc != SF_OK) {
		close(shard.fd);
		free(shard.file);
		free(shard.label);
		return rc;
	}
	VEC_PUSH(p->shards, p->shard_count, p->shard_capacity, shard, ok);
	if (!ok) {
		sf_seek_writer_free(shard.writer);
		close(shard.fd);
		free(shard.file);
		free(shard.label);
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	}
	*id_out = (long)(p->shard_count - 1);
	return SF_OK;
}

static sf_err shard_write(packer *p, long id, const void *data, size_t len, sf_error *err)
{
	return sf_seek_writer_write(p->shards[id].writer, data, len, err);
}

static uint64_t shard_offset(const packer *p, long id)
{
	return sf_seek_writer_offset(p->shards[id].writer);
}

static char *hex64(uint64_t value, char buf[17]);

/* Write the shard's dictionary beside it (shards/NNNNN.dict.zst, one zstd
   frame: a trained dictionary is mostly sample text, and compresses to a
   quarter) when its frames use one, and note the decision and its figures
   for store.json. May run on both packing threads at once. */
static sf_err shard_store_dictionary(packer *p, out_shard *shard, sf_error *err)
{
	sf_seek_dict_info info;
	const void *dict = NULL;
	size_t dict_len = 0, base = strlen(shard->file) - strlen(".zst");
	char name[64], hex[17];
	double saved = 0;
	char *full = NULL;
	void *packed = NULL;
	size_t packed_len = 0;
	int fd = -1;
	sf_err rc = SF_OK;

	sf_seek_writer_dictionary(shard->writer, &info, &dict, &dict_len);
	if (info.probe_bytes > 0)
		saved = ((double)info.probe_plain - (double)info.probe_dict) *
			(double)shard->content_bytes / (double)info.probe_bytes - (double)info.dict_bytes;
	shard->dictionary = json_pack("{s:b,s:s,s:I,s:I,s:I,s:I,s:I,s:I}", "used", info.used,
				      "reason", info.reason, "bytes", (json_int_t)info.dict_bytes,
				      "sample_bytes", (json_int_t)info.held_bytes,
				      "probe_bytes", (json_int_t)info.probe_bytes,
				      "probe_compressed_without", (json_int_t)info.probe_plain,
				      "probe_compressed_with", (json_int_t)info.probe_dict,
				      "estimated_saved_bytes", (json_int_t)saved);
	if (!shard->dictionary)
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	if (!info.used)
		return SF_OK;
	rc = sf_index_compress(dict, dict_len, &packed, &packed_len, err);
	if (rc != SF_OK)
		return rc;
	shard->dict_bytes = packed_len;
	snprintf(name, sizeof(name), "%.*s%s", (int)base, shard->file, SF_DICT_ZST_SUFFIX);
	full = sf_path_join(p->tmp, name);
	if (!full) {
		free(packed);
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	}
	fd = open(full, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || sf_write_all(fd, packed, packed_len) != 0 || fsync(fd) != 0)
		rc = sf_error_io(err, errno, "'%s': cannot write the shard's dictionary", full);
	else if (json_object_set_new(shard->dictionary, "file", json_string(name)) != 0 ||
		 json_object_set_new(shard->dictionary, "xxh64",
				     json_string(hex64(sf_xxh64(packed, packed_len, 0), hex))) != 0 ||
		 json_object_set_new(shard->dictionary, "id", json_integer(info.dict_id)) != 0 ||
		 /* what the shard pays is the file as stored, not the dictionary */
		 json_object_set_new(shard->dictionary, "estimated_saved_bytes",
				     json_integer((json_int_t)(saved + (double)dict_len - (double)packed_len))) != 0)
		rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	if (fd >= 0 && close(fd) != 0 && rc == SF_OK)
		rc = sf_error_io(err, errno, "'%s': close failed", full);
	if (rc == SF_OK)
		__atomic_store_n(&p->dict_zst_used, 1, __ATOMIC_RELAXED);
	free(packed);
	free(full);
	return rc;
}

static sf_err shard_close(packer *p, long id, sf_error *err)
{
	out_shard *shard = &p->shards[id];
	sf_err rc;

	if (!shard->writer)
		return SF_OK;
	shard->content_bytes = sf_seek_writer_offset(shard->writer);
	rc = sf_seek_writer_finish(shard->writer, &shard->compressed_bytes, &shard->frames, err);
	if (rc == SF_OK && p->options->dictionary != SF_SEEK_DICT_NEVER && strcmp(shard->kind, "raw") != 0)
		rc = shard_store_dictionary(p, shard, err);
	sf_seek_writer_free(shard->writer);
	shard->writer = NULL;
	if (rc == SF_OK && fsync(shard->fd) != 0)
		rc = sf_error_io(err, errno, "'%s/%s': fsync failed", p->tmp, shard->file);
	if (close(shard->fd) != 0 && rc == SF_OK)
		rc = sf_error_io(err, errno, "'%s/%s': close failed", p->tmp, shard->file);
	shard->fd = -1;
	return rc;
}

/* A step shard starts with one newline byte, so that any view can serve a
   line break as a segment (shard, 0, 1) without literal bytes in an index. */
static sf_err step_shard_open(packer *p, const char *label, uint64_t expected, long *id,
			      sf_error *err)
{
	sf_err rc = shard_open(p, "step", label, p->options->level, expected, id, err);

	if (rc == SF_OK)
		rc = shard_write(p, *id, "\n", 1, err);
	return rc;
}

/* ---- copying source bytes ------------------------------------------------ */

/* Sequential reader of one source file that hashes every byte it passes.
   A JSON file's bytes come from its scanner's window when it still holds
   them, so they are read from the file once. */
typedef struct src_reader {
	int fd;
	const char *path;
	uint64_t pos;
	sf_xxh64_state hash;
	sf_jscan *scan;        /* the file's scanner, or NULL */
	unsigned char *buffer; /* COPY_BUFFER_BYTES, the calling thread's */
} src_reader;

/* Copy the next (end - pos) bytes of the file into shard (or skip them
   when shard < 0), hashing them. */
static sf_err copy_range(packer *p, src_reader *reader, uint64_t end, long shard, sf_error *err)
{
	while (reader->pos < end) {
		size_t want = end - reader->pos > COPY_BUFFER_BYTES ? COPY_BUFFER_BYTES
								     : (size_t)(end - reader->pos);
		const unsigned char *data = NULL;
		size_t avail = 0;
		ssize_t n;
		sf_err rc;

		if (reader->scan)
			data = sf_jscan_bytes(reader->scan, reader->pos, &avail);
		if (data) {
			n = (ssize_t)(avail < want ? avail : want);
		} else {
			n = pread(reader->fd, reader->buffer, want, (off_t)reader->pos);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return sf_error_io(err, errno, "'%s': read failed at byte %" PRIu64, reader->path,
						   reader->pos);
			if (n == 0)
				return sf_error_set(err, SF_ERR_IO, "'%s': file shrank while being packed (at byte %" PRIu64 ")",
						    reader->path, reader->pos);
			data = reader->buffer;
		}
		sf_xxh64_update(&reader->hash, data, (size_t)n);
		if (shard >= 0) {
			rc = shard_write(p, shard, data, (size_t)n, err);
			if (rc != SF_OK)
				return rc;
		}
		reader->pos += (uint64_t)n;
		if (reader->scan)
			sf_jscan_keep_from(reader->scan, reader->pos);
		__atomic_add_fetch(&p->done_bytes, (uint64_t)n, __ATOMIC_RELAXED);
		draw_progress(p, 0);
		if (cancelled(p))
			return check_cancel(p, err);
	}
	return SF_OK;
}

static sf_err open_source(packer *p, src_entry *entry, src_reader *reader, char **full,
			  sf_error *err)
{
	*full = sf_path_join(entry->base ? entry->base : p->src, entry->path);
	if (!*full)
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	reader->fd = open(*full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (reader->fd < 0)
		return sf_error_io(err, errno, "'%s': cannot open", *full);
	reader->path = *full;
	reader->pos = 0;
	reader->scan = NULL;
	reader->buffer = p->buffer;
	sf_xxh64_init(&reader->hash, 0);
	return SF_OK;
}

static sf_err finish_source(packer *p, src_entry *entry, src_reader *reader, sf_error *err)
{
	uint64_t scanned_to;
	char extra;

	/* a scanner that met the end of the file right here has looked
	   already: one read less per batch file */
	if (!(reader->scan && sf_jscan_input_end(reader->scan, &scanned_to) && scanned_to == reader->pos) &&
	    pread(reader->fd, &extra, 1, (off_t)reader->pos) > 0)
		return sf_error_set(err, SF_ERR_IO, "'%s': file grew while being packed (past byte %" PRIu64 ")",
				    reader->path, reader->pos);
	entry->xxh64 = sf_xxh64_digest(&reader->hash);
	(void)p;
	return SF_OK;
}

/* A plain file: its bytes in one shard, as one segment. */
static sf_err pack_plain_file(packer *p, src_entry *entry, long shard, sf_error *err)
{
	src_reader reader;
	char *full = NULL;
	uint64_t start;
	sf_err rc;

	memset(&reader, 0, sizeof(reader));
	reader.fd = -1;
	rc = open_source(p, entry, &reader, &full, err);
	if (rc != SF_OK)
		goto out;
	start = shard_offset(p, shard);
	rc = copy_range(p, &reader, entry->size, shard, err);
	if (rc == SF_OK)
		rc = finish_source(p, entry, &reader, err);
	if (rc == SF_OK && !seg_push(&entry->segs, (uint32_t)shard, start, entry->size, SF_SUBST_NONE))
		rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
out:
	if (reader.fd >= 0)
		close(reader.fd);
	free(full);
	return rc;
}

/* Sample the start of a file: 1 when zstd at level 1 saves under 10%. */
static int looks_incompressible(packer *p, src_entry *entry)
{
	char *full = sf_path_join(p->src, entry->path);
	size_t sample = entry->size < 65536 ? (size_t)entry->size : 65536;
	size_t bound = ZSTD_compressBound(sample), csize;
	void *out = NULL;
	int fd = -1, result = 0;
	ssize_t n;

	if (!full || entry->size < 4096)
		goto out;
	fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	out = malloc(bound);
	if (fd < 0 || !out)
		goto out;
	n = sf_pread_full(fd, p->buffer, sample, 0);
	if (n <= 0)
		goto out;
	csize = ZSTD_compress(out, bound, p->buffer, (size_t)n, 1);
	if (!ZSTD_isError(csize) && (double)csize > 0.9 * (double)n)
		result = 1;
out:
	if (fd >= 0)
		close(fd);
	free(out);
	free(full);
	return result;
}

/* ---- finding things in the entry list ------------------------------------ */

typedef struct path_map {
	size_t *slots;         /* entry index + 1; 0 is empty */
	size_t capacity;
} path_map;

static sf_err path_map_build(packer *p, path_map *map, sf_error *err)
{
	size_t i;

	map->capacity = 16;
	while (map->capacity < p->entry_count * 2 + 16)
		map->capacity *= 2;
	map->slots = calloc(map->capacity, sizeof(*map->slots));
	if (!map->slots)
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	for (i = 0; i < p->entry_count; i++) {
		const char *path = p->entries[i].path;
		size_t slot = (size_t)sf_xxh64(path, strlen(path), 0) & (map->capacity - 1);

		while (map->slots[slot])
			slot = (slot + 1) & (map->capacity - 1);
		map->slots[slot] = i + 1;
	}
	return SF_OK;
}

static src_entry *path_map_find(packer *p, const path_map *map, const char *path)
{
	size_t slot = (size_t)sf_xxh64(path, strlen(path), 0) & (map->capacity - 1);

	while (map->slots[slot]) {
		src_entry *entry = &p->entries[map->slots[slot] - 1];

		if (strcmp(entry->path, path) == 0)
			return entry;
		slot = (slot + 1) & (map->capacity - 1);
	}
	return NULL;
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

/* "batch_<digits>.json" -> 1 and the number. */
static int batch_number(const char *name, uint64_t *seq)
{
	const char *p = name;
	uint64_t value = 0;

	if (strncmp(p, "batch_", 6) != 0)
		return 0;
	p += 6;
	if (*p < '0' || *p > '9')
		return 0;
	while (*p >= '0' && *p <= '9') {
		if (value > (UINT64_MAX - 9) / 10)
			return 0;
		value = value * 10 + (uint64_t)(*p - '0');
		p++;
	}
	if (strcmp(p, ".json") != 0)
		return 0;
	*seq = value;
	return 1;
}

/* Parent folder of a relative path ("" for a top-level name). */
static char *parent_dir(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? sf_strndup(path, (size_t)(slash - path)) : sf_strdup("");
}

/*
 * How much content each shard can expect, for the dictionary decision
 * (sf_seek_writer_options.expected_bytes): the sizes of the files that
 * feed it. Sets each group's estimate and p->shared_json_bytes; returns
 * the files shard's.
 */
static uint64_t expected_sizes(packer *p)
{
	uint64_t plain = 0;
	size_t i;

	p->shared_json_bytes = 0;
	for (i = 0; i < p->entry_count; i++) {
		const src_entry *e = &p->entries[i];

		if (e->type != SF_NODE_FILE)
			continue;
		if (e->role == ROLE_PLAIN)
			plain += e->size;
		else if (e->role == ROLE_MONOLITHIC || e->role == ROLE_PER_STEP_MANAGER)
			p->shared_json_bytes += e->size;
		else if (e->group >= 0 && (size_t)e->group < p->group_count)
			p->groups[e->group].expected_bytes += e->size;
	}
	return plain;
}

static sf_err pack_plain_files(packer *p, sf_error *err)
{
	size_t i;
	sf_err rc = SF_OK;

	for (i = 0; i < p->entry_count && rc == SF_OK; i++) {
		src_entry *entry = &p->entries[i];

		if (entry->type != SF_NODE_FILE || entry->role != ROLE_PLAIN)
			continue;
		if (looks_incompressible(p, entry)) {
			if (p->raw_shard < 0)
				rc = shard_open(p, "raw", "incompressible files", 1, 0, &p->raw_shard, err);
			if (rc == SF_OK)
				rc = pack_plain_file(p, entry, p->raw_shard, err);
		} else {
			rc = pack_plain_file(p, entry, p->files_shard, err);
		}
	}
	return rc;
}

/* ---- index documents ----------------------------------------------------- */

static int json_set_path(json_t *object, const char *key, const char *hex_key, const char *bytes)
{
	if (sf_utf8_valid(bytes, strlen(bytes)))
		return json_object_set_new(object, key, json_string(bytes));
	{
		char *hex = sf_hex_encode(bytes, strlen(bytes));
		int rc;

		if (!hex)
			return -1;
		rc = json_object_set_new(object, hex_key, json_string(hex));
		free(hex);
		return rc;
	}
}

static json_t *json_mtime(int64_t sec, uint32_t nsec)
{
	return json_pack("[II]", (json_int_t)sec, (json_int_t)nsec);
}

static json_t *json_segments(const seg_vec *segs)
{
	json_t *list = json_array();
	size_t i;

	for (i = 0; list && i < segs->count; i++)
		json_array_append_new(list, json_pack("[IIIi]", (json_int_t)segs->items[i].shard,
						      (json_int_t)segs->items[i].shard_offset,
						      (json_int_t)segs->items[i].length,
						      (int)segs->items[i].subst));
	return list;
}

static char *hex64(uint64_t value, char buf[17])
{
	snprintf(buf, 17, "%016" PRIx64, value);
	return buf;
}

static json_t *file_json(const char *path, uint32_t mode, int64_t sec, uint32_t nsec,
			 const seg_vec *segs, int has_hash, uint64_t hash)
{
	json_t *entry = json_object();
	char buf[17];

	if (!entry)
		return NULL;
	json_set_path(entry, "path", "path_hex", path);
	json_object_set_new(entry, "type", json_string("file"));
	json_object_set_new(entry, "mode", json_integer(mode));
	json_object_set_new(entry, "mtime", json_mtime(sec, nsec));
	json_object_set_new(entry, "size", json_integer((json_int_t)segs->total));
	if (has_hash)
		json_object_set_new(entry, "xxh64", json_string(hex64(hash, buf)));
	json_object_set_new(entry, "segments", json_segments(segs));
	return entry;
}

static json_t *dir_json(const char *path, uint32_t mode, int64_t sec, uint32_t nsec, long index)
{
	json_t *entry = json_object();

	if (!entry)
		return NULL;
	json_set_path(entry, "path", "path_hex", path);
	json_object_set_new(entry, "type", json_string("dir"));
	json_object_set_new(entry, "mode", json_integer(mode));
	json_object_set_new(entry, "mtime", json_mtime(sec, nsec));
	if (index >= 0)
		json_object_set_new(entry, "index", json_integer(index));
	return entry;
}

static json_t *symlink_json(const char *path, const char *target, int64_t sec, uint32_t nsec)
{
	json_t *entry = json_object();

	if (!entry)
		return NULL;
	json_set_path(entry, "path", "path_hex", path);
	json_object_set_new(entry, "type", json_string("symlink"));
	json_set_path(entry, "target", "target_hex", target);
	json_object_set_new(entry, "mtime", json_mtime(sec, nsec));
	return entry;
}

/* ---- index files ----
 *
 * Index files are compressed (level SF_INDEX_LEVEL), written and synced
 * by a thread of their own, in the order they were numbered, while the
 * packer encodes the next one: on 51,792 small files that work was a
 * quarter of a pack that no other thread could share. Queued text is
 * bounded by INDEX_QUEUE_BYTES; the packer waits for room past it. */
#define INDEX_QUEUE_BYTES ((size_t)64 << 20)

typedef struct index_job {
	struct index_job *next;        /* in numbering order */
	struct index_job *next_queued;
	char *text;                    /* owned until written */
	size_t text_len;
	char *full;                    /* the file */
	size_t slot;                   /* its place in p->indexes */
	char xxh64[17];                /* of the file's bytes, once written */
	sf_err rc;
	sf_error err;
} index_job;

typedef struct index_writer {
	pthread_mutex_t lock;
	pthread_cond_t wake;           /* a job queued, or stop */
	pthread_cond_t room;           /* queued text went down */
	index_job *jobs, **jobs_tail;  /* every job, for index_writer_finish */
	index_job *queue, **queue_tail;
	size_t queued_bytes;
	int stop;
	int discard;                   /* the pack failed: drop what is queued */
	pthread_t thread;
} index_writer;

static void index_job_run(index_job *job)
{
	void *packed = NULL;
	size_t packed_len = 0;
	int fd = -1;

	job->rc = sf_index_compress(job->text, job->text_len, &packed, &packed_len, &job->err);
	free(job->text);
	job->text = NULL;
	if (job->rc == SF_OK) {
		fd = open(job->full, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0 || sf_write_all(fd, packed, packed_len) != 0 || fsync(fd) != 0)
			job->rc = sf_error_io(&job->err, errno, "'%s': cannot write", job->full);
		else
			hex64(sf_xxh64(packed, packed_len, 0), job->xxh64);
	}
	if (fd >= 0)
		close(fd);
	free(packed);
}

static void *index_writer_main(void *arg)
{
	index_writer *w = arg;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		index_job *job = w->queue;

		if (!job) {
			if (w->stop)
				break;
			pthread_cond_wait(&w->wake, &w->lock);
			continue;
		}
		w->queue = job->next_queued;
		if (!w->queue)
			w->queue_tail = &w->queue;
		if (w->discard) {
			/* no file for a store that is about to be removed */
			w->queued_bytes -= job->text_len;
			free(job->text);
			job->text = NULL;
			job->rc = sf_error_set(&job->err, SF_ERR_IO, "'%s': not written, the pack failed", job->full);
			continue;
		}
		pthread_mutex_unlock(&w->lock);
		{
			size_t len = job->text_len;

			index_job_run(job);
			pthread_mutex_lock(&w->lock);
			w->queued_bytes -= len;
			pthread_cond_broadcast(&w->room);
		}
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* The writer thread, started on first use; NULL when the pack runs on
   one thread or no thread can be made (jobs then run at once). */
static index_writer *index_writer_get(packer *p)
{
	index_writer *w = p->index_writer;

	if (w || p->options->threads < 2)
		return w;
	w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	pthread_cond_init(&w->room, NULL);
	w->jobs_tail = &w->jobs;
	w->queue_tail = &w->queue;
	if (pthread_create(&w->thread, NULL, index_writer_main, w) != 0) {
		pthread_cond_destroy(&w->room);
		pthread_cond_destroy(&w->wake);
		pthread_mutex_destroy(&w->lock);
		free(w);
		return NULL;
	}
	p->index_writer = w;
	return w;
}

static void index_job_free(index_job *job)
{
	free(job->text);
	free(job->full);
	free(job);
}

/* Wait for every queued index file and stop the thread. With p->indexes
   still there, record each file's xxh64 in it and return the first
   failure, in numbering order. discard: the pack failed, so the files
   not written yet are dropped (their store is removed next). */
static sf_err index_writer_finish(packer *p, int discard, sf_error *err)
{
	index_writer *w = p->index_writer;
	index_job *job, *next;
	sf_err rc = SF_OK;

	if (!w)
		return SF_OK;
	pthread_mutex_lock(&w->lock);
	w->stop = 1;
	w->discard = discard;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	for (job = w->jobs; job; job = next) {
		next = job->next;
		if (rc == SF_OK && job->rc != SF_OK) {
			rc = job->rc;
			if (err)
				*err = job->err;
		}
		if (rc == SF_OK && p->indexes)
			json_object_set_new(json_array_get(p->indexes, job->slot), "xxh64", json_string(job->xxh64));
		index_job_free(job);
	}
	pthread_cond_destroy(&w->room);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	free(w);
	p->index_writer = NULL;
	return rc;
}

/* Number text (taken: freed here, whatever happens) as the next index
   file and have it compressed and written, by the writer thread when
   there is one. The file's xxh64 reaches p->indexes then, or in
   index_writer_finish. */
static sf_err write_index_text(packer *p, char *text, size_t text_len, long *id, sf_error *err)
{
	index_writer *w = index_writer_get(p);
	index_job *job = calloc(1, sizeof(*job));
	char name[64];
	sf_err rc = SF_OK;

	snprintf(name, sizeof(name), "%s/%05zu%s", SF_STORE_INDEX_DIR, json_array_size(p->indexes),
		 SF_INDEX_SUFFIX);
	if (!job || !(job->full = sf_path_join(p->tmp, name))) {
		free(job);
		free(text);
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	}
	job->text = text;
	job->text_len = text_len;
	job->slot = json_array_size(p->indexes);
	if (!w) {
		index_job_run(job);
		rc = job->rc;
		if (rc != SF_OK && err)
			*err = job->err;
	}
	if (rc == SF_OK) {
		*id = (long)job->slot;
		/* a failed append would give the next index this one's number */
		if (json_array_append_new(p->indexes, w ? json_pack("{s:s}", "file", name)
							: json_pack("{s:s,s:s}", "file", name, "xxh64", job->xxh64)) != 0 ||
		    json_array_size(p->indexes) != job->slot + 1) {
			rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
			if (w) {
				index_job_free(job);
				return rc;
			}
		}
	}
	if (!w) {
		index_job_free(job);
		return rc;
	}
	pthread_mutex_lock(&w->lock);
	while (w->queued_bytes > 0 && w->queued_bytes + text_len > INDEX_QUEUE_BYTES)
		pthread_cond_wait(&w->room, &w->lock);
	*w->jobs_tail = job;
	w->jobs_tail = &job->next;
	*w->queue_tail = job;
	w->queue_tail = &job->next_queued;
	w->queued_bytes += text_len;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	return SF_OK;
}

/* Write an index document (format 2.0, docs/FORMAT.md); returns its id in
   *id. Consumes entries. keep_hashes: 0 for views derived from source
   files, whose content the source entries and frame checksums already
   guard; the fingerprints would be a third of the index. */
static sf_err write_index(packer *p, json_t *entries, int keep_hashes, long *id, sf_error *err)
{
	char *text = NULL;
	size_t text_len = 0;
	sf_err rc = sf_index_encode(entries, keep_hashes, &text, &text_len, err);

	if (rc == SF_OK)
		rc = write_index_text(p, text, text_len, id, err);
	else
		free(text);
	json_decref(entries);
	return rc;
}

/* The source index, encoded straight from the packer's records: for a
   cache of 50,000 files a JSON document of them would take 80 MB.

   A folder whose part of the tree holds SOURCE_INDEX_SPLIT entries or more
   (a steps_data folder of thousands of batch files) gets an index of its
   own, which the index above names by number (docs/FORMAT.md). A reader
   then loads it when the folder is first opened: listing source/ does not
   parse every batch file's entry, and the folders of a walk can be loaded
   on one core while the walker works on the other. */
#define SOURCE_INDEX_SPLIT 4096

typedef struct source_split {
	packer *p;
	sf_index_entry *list;     /* every source entry, in walk order */
	size_t count;
	size_t *end;              /* folders: one past the last entry below them */
	long *index;              /* folders with their own index: its number, else -1 */
	sf_error *err;
} source_split;

/* Encode and write the entries below folder `dir` (-1: the source root),
   whose range is [from, to); folders with an index of their own appear as
   references to it. */
static sf_err write_source_part(source_split *x, long dir, size_t from, size_t to, long *id)
{
	size_t prefix = dir >= 0 ? strlen(x->list[dir].path) + 1 : 0, n = 0, i;
	sf_index_entry *part = calloc(to > from ? to - from : 1, sizeof(*part));
	char *text = NULL;
	size_t text_len = 0;
	sf_err rc;

	if (!part)
		return sf_error_set(x->err, SF_ERR_NOMEM, "out of memory");
	for (i = from; i < to; i++) {
		part[n] = x->list[i];
		part[n].path += prefix;
		if (x->list[i].type == SF_NODE_DIR && x->index[i] >= 0) {
			part[n].has_index = 1;
			part[n].index = x->index[i];
			i = x->end[i] - 1;  /* its entries are in its own index */
		}
		n++;
	}
	rc = sf_index_encode_entries(part, n, 1, &text, &text_len, x->err);
	if (rc == SF_OK)
		rc = write_index_text(x->p, text, text_len, id, x->err);
	else
		free(text);
	free(part);
	return rc;
}

/* Entries below folder `dir` that stay in the index above it, after the
   folders below that got their own index (written first, deepest first).
   *rc is set on failure. */
static size_t split_source_folder(source_split *x, size_t dir, sf_err *rc)
{
	size_t left = 0, i = dir + 1;

	while (i < x->end[dir] && *rc == SF_OK) {
		left++;
		if (x->list[i].type == SF_NODE_DIR) {
			left += split_source_folder(x, i, rc);
			i = x->end[i];
		} else {
			i++;
		}
	}
	if (*rc == SF_OK && left >= SOURCE_INDEX_SPLIT) {
		*rc = write_source_part(x, (long)dir, dir + 1, x->end[dir], &x->index[dir]);
		return 0;
	}
	return left;
}

static sf_err write_source_index(packer *p, long *id, sf_error *err)
{
	sf_index_entry *list = calloc(p->entry_count ? p->entry_count : 1, sizeof(*list));
	char (*hashes)[17] = calloc(p->entry_count ? p->entry_count : 1, sizeof(*hashes));
	size_t *end = calloc(p->entry_count ? p->entry_count : 1, sizeof(*end));
	long *index = calloc(p->entry_count ? p->entry_count : 1, sizeof(*index));
	size_t *open_dirs = calloc(MAX_SOURCE_DEPTH + 2, sizeof(*open_dirs));
	size_t i, count = 0, depth = 0;
	source_split x;
	sf_err rc = SF_OK;

	if (!list || !hashes || !end || !index || !open_dirs) {
		rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < p->entry_count; i++) {
		const src_entry *e = &p->entries[i];
		sf_index_entry *item = &list[count];

		if (e->base)
			continue; /* outside SRC: only in the step views */
		item->path = e->path;
		item->type = e->type;
		item->mtime_sec = e->mtime_sec;
		item->mtime_nsec = e->mtime_nsec;
		if (e->type != SF_NODE_SYMLINK) {
			item->has_mode = 1;
			item->mode = e->mode;
		}
		if (e->type == SF_NODE_FILE) {
			item->segments = e->segs.items;
			item->segment_count = e->segs.count;
			item->xxh64 = hex64(e->xxh64, hashes[count]);
		} else if (e->type == SF_NODE_SYMLINK) {
			item->target = e->target;
		}
		/* the walk lists a folder, then everything below it: a folder
		   ends at the first entry whose path is not inside it */
		while (depth > 0) {
			const char *up = list[open_dirs[depth - 1]].path;
			size_t len = strlen(up);

			if (strncmp(item->path, up, len) == 0 && item->path[len] == '/')
				break;
			end[open_dirs[--depth]] = count;
		}
		index[count] = -1;
		if (e->type == SF_NODE_DIR) {
			end[count] = count + 1;
			if (depth <= MAX_SOURCE_DEPTH)
				open_dirs[depth++] = count;
		}
		count++;
	}
	while (depth > 0)
		end[open_dirs[--depth]] = count;

	x.p = p;
	x.list = list;
	x.count = count;
	x.end = end;
	x.index = index;
	x.err = err;
	for (i = 0; i < count && rc == SF_OK;) {
		if (list[i].type == SF_NODE_DIR) {
			split_source_folder(&x, i, &rc);
			i = end[i];
		} else {
			i++;
		}
	}
	if (rc == SF_OK)
		rc = write_source_part(&x, -1, 0, count, id);
out:
	free(open_dirs);
	free(index);
	free(end);
	free(hashes);
	free(list);
	return rc;
}

/* ---- generated files ----------------------------------------------------- */

/* Store generated text in the files shard; segments go to segs. */
static sf_err store_generated(packer *p, const char *text, size_t len, seg_vec *segs, sf_error *err)
{
	uint64_t start = shard_offset(p, p->files_shard);
	sf_err rc = shard_write(p, p->files_shard, text, len, err);

	if (rc == SF_OK && !seg_push(segs, (uint32_t)p->files_shard, start, len, SF_SUBST_NONE))
		rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	return rc;
}

/*
 * A step name as a file name: '/', '%', control bytes and DEL are written
 * %XX; "." and ".." become "%2E" and "%2E%2E"; the empty name is "%".
 */
static char *safe_name(const char *name)
{
	size_t len = strlen(name), i, used = 0;
	char *out = malloc(len * 3 + 2);

	if (!out)
		return NULL;
	if (len == 0) {
		strcpy(out, "%");
		return out;
	}
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		strcpy(out, len == 1 ? "%2E" : "%2E%2E");
		return out;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '/' || c == '%' || c < 0x20 || c == 0x7f)
			used += (size_t)sprintf(out + used, "%%%02X", c);
		else
			out[used++] = (char)c;
	}
	out[used] = '\0';
	if (used > SF_MAX_NAME_BYTES) {
		/* keep names within NAME_MAX; the step list in manager_meta.json has the full name */
		char buf[17];

		snprintf(out + SF_MAX_NAME_BYTES - 17, 18, "~%s", hex64(sf_xxh64(name, len, 0), buf));
	}
	return out;
}

/* The top-level string value of `key` in a JSON file (raw text), or NULL. */
static char *top_level_string(packer *p, const char *rel, const char *key)
{
	char *full = sf_path_join(p->src, rel), *value = NULL;
	sf_jscan *scan = NULL;
	sf_jscan_options so;
	sf_jtok tok;
	int fd;

	if (!full)
		return NULL;
	fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	memset(&so, 0, sizeof(so));
	so.allow_nan = 1;
	so.max_depth = p->options->max_depth;
	if (fd < 0 || sf_jscan_open_fd(&scan, fd, full, &so, NULL) != SF_OK)
		goto out;
	if (sf_jscan_next(scan, &tok, NULL) != SF_OK || tok.type != SF_JTOK_OBJECT_BEGIN)
		goto out;
	while (sf_jscan_next(scan, &tok, NULL) == SF_OK && tok.type == SF_JTOK_KEY) {
		int match = tok.text && strcmp(tok.text, key) == 0;

		if (match) {
			if (sf_jscan_next(scan, &tok, NULL) == SF_OK && tok.type == SF_JTOK_STRING && tok.text)
				value = sf_strdup(tok.text);
			break;
		}
		if (sf_jscan_skip_value(scan, NULL, NULL, NULL, NULL) != SF_OK)
			break;
	}
out:
	sf_jscan_free(scan);
	if (fd >= 0)
		close(fd);
	free(full);
	return value;
}

/* Read a small JSON file whole, after checking it is one valid value. */
static char *read_json_text(packer *p, const char *rel, size_t limit, size_t *len_out, sf_error *err)
{
	char *full = sf_path_join(p->src, rel), *text = NULL;
	sf_jscan *scan = NULL;
	sf_jscan_options so;
	uint64_t start, end;
	struct stat st;
	int fd = -1;
	sf_jtok tok;

	if (!full) {
		sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		return NULL;
	}
	fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) != 0) {
		sf_error_io(err, errno, "'%s': cannot open", full);
		goto out;
	}
	if ((uint64_t)st.st_size > limit) {
		sf_error_set(err, SF_ERR_LIMIT, "'%s': larger than %zu bytes", full, limit);
		goto out;
	}
	memset(&so, 0, sizeof(so));
	so.allow_nan = 1;
	so.reject_duplicate_keys = 1;
	so.max_depth = p->options->max_depth;
	if (sf_jscan_open_fd(&scan, fd, full, &so, err) != SF_OK ||
	    sf_jscan_skip_value(scan, &start, &end, NULL, err) != SF_OK ||
	    sf_jscan_next(scan, &tok, err) != SF_OK)
		goto out;
	text = malloc((size_t)(end - start) + 1);
	if (!text || sf_pread_full(fd, text, (size_t)(end - start), start) != (ssize_t)(end - start)) {
		free(text);
		text = NULL;
		sf_error_io(err, errno ? errno : EIO, "'%s': read failed", full);
		goto out;
	}
	text[end - start] = '\0';
	*len_out = (size_t)(end - start);
out:
	sf_jscan_free(scan);
	if (fd >= 0)
		close(fd);
	free(full);
	return text;
}

/* ---- batches: rows stored once ------------------------------------------- */

/* One batch that carries rows, as step_N/batches/NAME shows it. */
typedef struct batch_rec {
	char *name;              /* path under step_N/batches/ */
	uint64_t seq;
	size_t order;            /* order of appearance: breaks ties of seq */
	seg_vec segs;            /* the batch's own bytes */
	seg_vec rows;            /* its rows, one line each */
	uint64_t rows_count;
	uint64_t size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
} batch_rec;

static void batch_rec_release(batch_rec *rec)
{
	free(rec->name);
	free(rec->segs.items);
	free(rec->rows.items);
}

static step_group *group_at(packer *p, long id)
{
	return &p->groups[id];
}

/* The group with this key, created when absent. */
static long group_get(packer *p, const char *key, const char *label, sf_error *err)
{
	step_group group;
	size_t i;
	int ok;

	for (i = 0; i < p->group_count; i++)
		if (strcmp(p->groups[i].key, key) == 0)
			return (long)i;
	memset(&group, 0, sizeof(group));
	group.key = sf_strdup(key);
	group.label = sf_strdup(label);
	group.shard = -1;
	if (!group.key || !group.label) {
		free(group.key);
		free(group.label);
		sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		return -1;
	}
	VEC_PUSH(p->groups, p->group_count, p->group_capacity, group, ok);
	if (!ok) {
		free(group.key);
		free(group.label);
		sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		return -1;
	}
	return (long)(p->group_count - 1);
}

/*
 * The group's open shard, rolled over past shard_bytes. Only ever called
 * at a batch boundary, so nothing spans two shards.
 */
static sf_err group_shard(packer *p, long id, long *shard, sf_error *err)
{
	step_group *g = group_at(p, id);
	sf_err rc = SF_OK;
	int ok;

	if (g->shard >= 0 && shard_offset(p, g->shard) >= p->options->shard_bytes) {
		rc = shard_close(p, g->shard, err);
		g->shard = -1;
	}
	if (rc == SF_OK && g->shard < 0) {
		long opened = -1;

		rc = step_shard_open(p, g->label, g->expected_bytes ? g->expected_bytes : p->shared_json_bytes,
				     &opened, err);
		if (rc != SF_OK)
			return rc;
		g = group_at(p, id);
		g->shard = opened;
		VEC_PUSH(g->shard_ids, g->shard_id_count, g->shard_id_capacity, opened, ok);
		if (!ok)
			return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	}
	*shard = g->shard;
	return rc;
}

enum { RULE_BATCH, RULE_ROWS, RULE_STEP };

#define MAX_RULE_DEPTH 6

/*
 * Where batches sit inside a JSON file. A path component is a key, "*"
 * (any key), "$" (any key: the step the value belongs to) or "#" (any
 * list element). RULE_BATCH: the value is a _Batch object whose "data" is
 * a list of lists of rows. RULE_ROWS: the value is a flat list of rows.
 * RULE_STEP: the value is a step's own state (kept for step.json).
 * name: the file name under batches/ ("{N}": path component N, "{seq}").
 */
typedef struct json_rule {
	const char *path[MAX_RULE_DEPTH + 1];
	int kind;
	const char *name;
	int data_required;
} json_rule;

typedef struct json_plan {
	const json_rule *rules;
	size_t rule_count;
	const char *group_prefix;  /* group key of a "$" step: prefix + '\n' + name */
	long file_group;           /* group the whole file belongs to, or -1 */
	const char *file_name;     /* for "{file}" in names */
} json_plan;

typedef struct walker {
	packer *p;
	src_entry *entry;
	src_reader *reader;
	sf_jscan *scan;
	const json_plan *plan;
	const char *full;
	char *path[MAX_RULE_DEPTH];
	int depth;
	long shard;
	int in_run;
	uint64_t run_start;        /* shard offset of the run's first row */
	uint64_t last_end;         /* file offset just past the previous row */
	int in_list;               /* a run of multi-line rows is open (see emit_row) */
	uint64_t list_start;       /* shard offset of its open segment's first row */
	uint64_t list_end;         /* shard offset just past its last row */
	batch_rec *batch;          /* the batch being read, or NULL */
	long batch_group;
	uint64_t batch_start;
	size_t batch_first_seg;
} walker;

static sf_err layout_error(const char *path, uint64_t offset, const char *what, sf_error *err)
{
	return sf_error_set(err, SF_ERR_FORMAT, "'%s': byte %" PRIu64 ": %s", path, offset, what);
}

static sf_err close_run(walker *w, sf_error *err)
{
	uint64_t end;

	if (!w->in_run)
		return SF_OK;
	w->in_run = 0;
	end = shard_offset(w->p, w->shard); /* just past the run's final '\n' */
	if (!seg_push(&w->entry->segs, (uint32_t)w->shard, w->run_start, end - w->run_start - 1,
		      SF_SUBST_NL_COMMA) ||
	    !seg_push(&w->batch->rows, (uint32_t)w->shard, w->run_start, end - w->run_start, SF_SUBST_NONE))
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	return SF_OK;
}

/* End the run of multi-line rows: its last segment, then the line break
   after its last row (the step shard's first byte). */
static sf_err close_list(walker *w, sf_error *err)
{
	seg_vec *rows = &w->batch->rows;

	if (!w->in_list)
		return SF_OK;
	w->in_list = 0;
	__atomic_store_n(&w->p->list_lines_used, 1, __ATOMIC_RELAXED);
	if (!seg_push(rows, (uint32_t)w->shard, w->list_start, w->list_end - w->list_start,
		      SF_SUBST_LIST_LINES) ||
	    !seg_push(rows, (uint32_t)w->shard, 0, 1, SF_SUBST_NONE))
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	return SF_OK;
}

/* Copy file bytes up to `end` as literal text. */
static sf_err emit_literal(walker *w, uint64_t end, sf_error *err)
{
	uint64_t start = shard_offset(w->p, w->shard);
	sf_err rc;

	if (end <= w->reader->pos)
		return SF_OK;
	rc = copy_range(w->p, w->reader, end, w->shard, err);
	if (rc == SF_OK && !seg_push(&w->entry->segs, (uint32_t)w->shard, start,
				     shard_offset(w->p, w->shard) - start, SF_SUBST_NONE))
		rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	return rc;
}

static sf_err emit_row(walker *w, uint64_t start, uint64_t end, uint64_t newlines, sf_error *err)
{
	sf_err rc;

	w->batch->rows_count++;
	if (newlines == 0) {
		rc = close_list(w, err);
		if (rc != SF_OK)
			return rc;
		if (w->in_run && start == w->last_end + 1) {
			/* the one byte between is the ',' the run's '\n' will serve */
			rc = copy_range(w->p, w->reader, start, -1, err);
		} else {
			rc = close_run(w, err);
			if (rc == SF_OK)
				rc = emit_literal(w, start, err);
			w->in_run = 1;
			w->run_start = shard_offset(w->p, w->shard);
		}
		if (rc == SF_OK)
			rc = copy_range(w->p, w->reader, end, w->shard, err);
		if (rc == SF_OK)
			rc = shard_write(w->p, w->shard, "\n", 1, err);
		w->last_end = end;
		return rc;
	}
	/*
	 * A row spanning lines (pretty-printed JSON) stays in the literal text
	 * of its file, stored once. rows.jsonl serves the run of such rows in
	 * place with SF_SUBST_LIST_LINES (',' between rows -> '\n', other
	 * '\n' -> ' '), so the run costs a few segments however many rows it
	 * holds. A segment is cut at a row once it passes LIST_SEGMENT_BYTES,
	 * which bounds how far a reader scans to learn where it stands.
	 */
	rc = close_run(w, err);
	if (rc == SF_OK) {
		/* the row's place in the shard: the literal text is copied as is */
		uint64_t row_at = shard_offset(w->p, w->shard) + (start - w->reader->pos);

		rc = emit_literal(w, end, err);
		if (rc != SF_OK)
			return rc;
		if (w->in_list && row_at - w->list_start >= LIST_SEGMENT_BYTES) {
			if (!seg_push(&w->batch->rows, (uint32_t)w->shard, w->list_start,
				      row_at - w->list_start, SF_SUBST_LIST_LINES))
				return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
			w->list_start = row_at;
		} else if (!w->in_list) {
			w->in_list = 1;
			w->list_start = row_at;
		}
		w->list_end = row_at + (end - start);
	}
	if (rc != SF_OK)
		return rc;
	w->last_end = end;
	return SF_OK;
}

/* The shard for text outside batches: the file's step, else the files shard. */
static sf_err outer_shard(walker *w, sf_error *err)
{
	if (w->plan->file_group >= 0)
		return group_shard(w->p, w->plan->file_group, &w->shard, err);
	w->shard = w->p->files_shard;
	return SF_OK;
}

/* Decode a JSON key's raw text (escapes) into UTF-8; NULL on bad input. */
static char *decode_key(const char *raw)
{
	size_t len = raw ? strlen(raw) : 0, i, used = 0;
	char *out = malloc(len * 3 + 1);

	if (!out)
		return NULL;
	for (i = 0; i < len; i++) {
		unsigned cp;

		if (raw[i] != '\\') {
			out[used++] = raw[i];
			continue;
		}
		i++;
		switch (raw[i]) {
		case 'b': out[used++] = '\b'; continue;
		case 'f': out[used++] = '\f'; continue;
		case 'n': out[used++] = '\n'; continue;
		case 'r': out[used++] = '\r'; continue;
		case 't': out[used++] = '\t'; continue;
		case 'u': break;
		default: out[used++] = raw[i]; continue;
		}
		if (sscanf(raw + i + 1, "%4x", &cp) != 1) {
			free(out);
			return NULL;
		}
		i += 4;
		if (cp >= 0xD800 && cp <= 0xDBFF && raw[i + 1] == '\\' && raw[i + 2] == 'u') {
			unsigned low;

			if (sscanf(raw + i + 3, "%4x", &low) == 1 && low >= 0xDC00 && low <= 0xDFFF) {
				cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
				i += 6;
			}
		}
		if (cp >= 0xD800 && cp <= 0xDFFF)
			cp = 0xFFFD; /* a lone surrogate cannot be UTF-8 */
		if (cp == 0)
			cp = 0xFFFD;
		if (cp < 0x80) {
			out[used++] = (char)cp;
		} else if (cp < 0x800) {
			out[used++] = (char)(0xC0 | cp >> 6);
			out[used++] = (char)(0x80 | (cp & 0x3F));
		} else if (cp < 0x10000) {
			out[used++] = (char)(0xE0 | cp >> 12);
			out[used++] = (char)(0x80 | ((cp >> 6) & 0x3F));
			out[used++] = (char)(0x80 | (cp & 0x3F));
		} else {
			out[used++] = (char)(0xF0 | cp >> 18);
			out[used++] = (char)(0x80 | ((cp >> 12) & 0x3F));
			out[used++] = (char)(0x80 | ((cp >> 6) & 0x3F));
			out[used++] = (char)(0x80 | (cp & 0x3F));
		}
	}
	out[used] = '\0';
	return out;
}

static int component_matches(const char *pattern, const char *component)
{
	if (strcmp(pattern, "#") == 0)
		return strcmp(component, "#") == 0;
	if (strcmp(pattern, "*") == 0 || strcmp(pattern, "$") == 0)
		return strcmp(component, "#") != 0;
	return strcmp(pattern, component) == 0;
}

/* The rule whose path is exactly the current path (exact) or that
   continues below it (!exact). */
static const json_rule *match_rule(const walker *w, int exact)
{
	size_t r;

	for (r = 0; r < w->plan->rule_count; r++) {
		const json_rule *rule = &w->plan->rules[r];
		int d, length = 0;

		while (rule->path[length])
			length++;
		if (exact ? length != w->depth : length <= w->depth)
			continue;
		for (d = 0; d < w->depth; d++)
			if (!component_matches(rule->path[d], w->path[d]))
				break;
		if (d == w->depth)
			return rule;
	}
	return NULL;
}

/* The step a matched value belongs to: its "$" component or the file's. */
static long rule_group(walker *w, const json_rule *rule, sf_error *err)
{
	int d;

	for (d = 0; rule->path[d]; d++) {
		if (strcmp(rule->path[d], "$") == 0) {
			char *key = malloc(strlen(w->plan->group_prefix) + strlen(w->path[d]) + 2);
			long id;

			if (!key) {
				sf_error_set(err, SF_ERR_NOMEM, "out of memory");
				return -2;
			}
			sprintf(key, "%s\n%s", w->plan->group_prefix, w->path[d]);
			if (rule->kind == RULE_STEP && strcmp(w->path[d], "type_info") == 0) {
				free(key);
				return -1; /* the manager's own type tag, not a step */
			}
			id = group_get(w->p, key, w->path[d], err);
			free(key);
			return id < 0 ? -2 : id;
		}
	}
	return w->plan->file_group;
}

/* Expand a batch name template; components are made safe file names. */
static char *batch_name(const walker *w, const char *pattern, uint64_t seq)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	const char *c;

	if (!f)
		return NULL;
	for (c = pattern; *c; c++) {
		if (c[0] == '{' && strncmp(c, "{seq}", 5) == 0) {
			fprintf(f, "%" PRIu64, seq);
			c += 4;
		} else if (c[0] == '{' && strncmp(c, "{file}", 6) == 0) {
			fputs(w->plan->file_name ? w->plan->file_name : "batch.json", f);
			c += 5;
		} else if (c[0] == '{' && c[1] >= '0' && c[1] <= '9' && c[2] == '}') {
			int d = c[1] - '0';
			char *safe = d < w->depth ? safe_name(w->path[d]) : NULL;

			fputs(safe ? safe : "_", f);
			free(safe);
			c += 2;
		} else {
			fputc(*c, f);
		}
	}
	fclose(f);
	return out;
}

static sf_err begin_batch(walker *w, long group, uint64_t start, sf_error *err)
{
	sf_err rc = close_run(w, err);

	if (rc == SF_OK)
		rc = emit_literal(w, start, err);
	if (rc == SF_OK)
		rc = group_shard(w->p, group, &w->shard, err);
	if (rc != SF_OK)
		return rc;
	w->batch = calloc(1, sizeof(*w->batch));
	if (!w->batch)
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	w->batch->order = __atomic_fetch_add(&w->p->batch_order, 1, __ATOMIC_RELAXED);
	w->batch->mtime_sec = w->entry->mtime_sec;
	w->batch->mtime_nsec = w->entry->mtime_nsec;
	w->batch_group = group;
	w->batch_start = start;
	/* the batch's segments start here: never merge them into the text before */
	w->entry->segs.barrier = w->entry->segs.count;
	w->batch_first_seg = w->entry->segs.count;
	return SF_OK;
}

static sf_err end_batch(walker *w, const json_rule *rule, uint64_t end, int keep, sf_error *err)
{
	batch_rec *rec = w->batch;
	sf_err rc = close_run(w, err);
	size_t i;
	int ok;

	if (rc == SF_OK)
		rc = emit_literal(w, end, err);
	w->batch = NULL;
	if (rc == SF_OK && keep) {
		step_group *g;

		for (i = w->batch_first_seg; i < w->entry->segs.count && rc == SF_OK; i++)
			if (!seg_push(&rec->segs, w->entry->segs.items[i].shard, w->entry->segs.items[i].shard_offset,
				      w->entry->segs.items[i].length, w->entry->segs.items[i].subst))
				rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		rec->size = end - w->batch_start;
		rec->name = batch_name(w, rule->name, rec->seq);
		if (rc == SF_OK && (!rec->name || rec->segs.total != rec->size))
			rc = sf_error_set(err, SF_ERR_NOMEM, "'%s': cannot record the batch at byte %" PRIu64,
					  w->full, w->batch_start);
		if (rc == SF_OK) {
			g = group_at(w->p, w->batch_group);
			VEC_PUSH(g->batches, g->batch_count, g->batch_capacity, *rec, ok);
			if (!ok)
				rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
			else {
				g->rows += rec->rows_count;
				g->batch_bytes += rec->size;
				if (rec->mtime_sec > g->mtime_sec ||
				    (rec->mtime_sec == g->mtime_sec && rec->mtime_nsec > g->mtime_nsec)) {
					g->mtime_sec = rec->mtime_sec;
					g->mtime_nsec = rec->mtime_nsec;
				}
				free(rec);
				rec = NULL;
			}
		}
	}
	if (rec) {
		batch_rec_release(rec);
		free(rec);
	}
	if (rc == SF_OK)
		rc = outer_shard(w, err);
	return rc;
}

/* Every row of the list being read, up to (not including) its ']'. */
static sf_err emit_rows(walker *w, sf_error *err)
{
	sf_err rc = SF_OK;

	while (rc == SF_OK && !sf_jscan_at_container_end(w->scan)) {
		uint64_t start = 0, end = 0, newlines = 0;

		rc = sf_jscan_skip_value(w->scan, &start, &end, &newlines, err);
		if (rc == SF_OK)
			rc = emit_row(w, start, end, newlines, err);
	}
	return rc == SF_OK ? close_list(w, err) : rc;
}

/* "data": a list of lists of rows. */
static sf_err walk_row_lists(walker *w, sf_error *err)
{
	sf_jtok tok;
	sf_err rc = sf_jscan_next(w->scan, &tok, err);

	if (rc == SF_OK && tok.type != SF_JTOK_ARRAY_BEGIN)
		return layout_error(w->full, tok.start, "expected \"data\" to be a list of lists of rows", err);
	while (rc == SF_OK && !sf_jscan_at_container_end(w->scan)) {
		rc = sf_jscan_next(w->scan, &tok, err);
		if (rc == SF_OK && tok.type != SF_JTOK_ARRAY_BEGIN)
			return layout_error(w->full, tok.start, "expected a list of rows inside \"data\"", err);
		if (rc == SF_OK)
			rc = emit_rows(w, err);
		if (rc == SF_OK)
			rc = sf_jscan_next(w->scan, &tok, err); /* inner ']' */
	}
	if (rc == SF_OK)
		rc = sf_jscan_next(w->scan, &tok, err); /* outer ']' */
	return rc;
}

static uint64_t parse_seq(const sf_jtok *tok)
{
	uint64_t value = 0;
	const char *c;

	if (tok->type != SF_JTOK_NUMBER || !tok->text)
		return 0;
	for (c = tok->text; *c >= '0' && *c <= '9'; c++)
		value = value > UINT64_MAX / 10 - 1 ? UINT64_MAX : value * 10 + (uint64_t)(*c - '0');
	return value;
}

static sf_err walk_batch(walker *w, const json_rule *rule, sf_error *err)
{
	long group = rule_group(w, rule, err);
	int has_data = 0;
	sf_jtok tok;
	sf_err rc;

	if (group == -2)
		return err ? err->code : SF_ERR_NOMEM;
	rc = sf_jscan_next(w->scan, &tok, err);
	if (rc != SF_OK)
		return rc;
	if (tok.type == SF_JTOK_NULL && !rule->data_required)
		return SF_OK; /* e.g. no last batch yet */
	if (group < 0)
		return layout_error(w->full, tok.start, "a batch outside any step", err);
	if (rule->kind == RULE_ROWS) {
		if (tok.type != SF_JTOK_ARRAY_BEGIN)
			return layout_error(w->full, tok.start, "expected a list of rows", err);
		rc = begin_batch(w, group, tok.start, err);
		if (rc == SF_OK)
			rc = emit_rows(w, err);
		if (rc == SF_OK)
			rc = sf_jscan_next(w->scan, &tok, err);
		return rc == SF_OK ? end_batch(w, rule, tok.end, 1, err) : rc;
	}
	if (tok.type != SF_JTOK_OBJECT_BEGIN)
		return layout_error(w->full, tok.start, "expected a batch object ('{')", err);
	rc = begin_batch(w, group, tok.start, err);
	while (rc == SF_OK) {
		rc = sf_jscan_next(w->scan, &tok, err);
		if (rc != SF_OK || tok.type == SF_JTOK_OBJECT_END)
			break;
		if (tok.text && strcmp(tok.text, "seq_no") == 0) {
			rc = sf_jscan_next(w->scan, &tok, err);
			if (rc == SF_OK && tok.type != SF_JTOK_NUMBER)
				rc = layout_error(w->full, tok.start, "expected \"seq_no\" to be a number", err);
			else if (rc == SF_OK)
				w->batch->seq = parse_seq(&tok);
		} else if (tok.text && strcmp(tok.text, "data") == 0) {
			has_data = 1;
			rc = walk_row_lists(w, err);
		} else {
			rc = sf_jscan_skip_value(w->scan, NULL, NULL, NULL, err);
		}
	}
	if (rc == SF_OK && !has_data && rule->data_required)
		rc = layout_error(w->full, tok.start, "expected a \"data\" member holding the batch's rows", err);
	if (rc != SF_OK) {
		if (w->batch) {
			batch_rec_release(w->batch);
			free(w->batch);
			w->batch = NULL;
		}
		return rc;
	}
	return end_batch(w, rule, tok.end, has_data, err);
}

static sf_err walk_value(walker *w, sf_error *err);

/* Walk into a container whose path may hold batches. */
static sf_err walk_container(walker *w, const json_rule *step_rule, sf_error *err)
{
	size_t first_seg = 0;
	uint64_t start;
	sf_jtok tok;
	sf_err rc = sf_jscan_next(w->scan, &tok, err);
	long group = -1;

	if (rc != SF_OK || (tok.type != SF_JTOK_OBJECT_BEGIN && tok.type != SF_JTOK_ARRAY_BEGIN))
		return rc;
	start = tok.start;
	if (step_rule && tok.type == SF_JTOK_OBJECT_BEGIN)
		group = rule_group(w, step_rule, err);
	if (group == -2)
		return err ? err->code : SF_ERR_NOMEM;
	if (group >= 0) {
		rc = close_run(w, err);
		if (rc == SF_OK)
			rc = emit_literal(w, start, err);
		w->entry->segs.barrier = w->entry->segs.count;
		first_seg = w->entry->segs.count;
	}
	while (rc == SF_OK && !sf_jscan_at_container_end(w->scan)) {
		char *component;

		if (tok.type == SF_JTOK_OBJECT_BEGIN) {
			sf_jtok key;

			rc = sf_jscan_next(w->scan, &key, err);
			if (rc != SF_OK)
				break;
			component = decode_key(key.text ? key.text : "");
		} else {
			component = sf_strdup("#");
		}
		if (!component)
			return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		w->path[w->depth++] = component;
		rc = walk_value(w, err);
		free(w->path[--w->depth]);
	}
	if (rc == SF_OK)
		rc = sf_jscan_next(w->scan, &tok, err); /* the closing bracket */
	if (rc == SF_OK && group >= 0) {
		step_group *g;
		size_t i;

		rc = emit_literal(w, tok.end, err);
		g = group_at(w->p, group);
		free(g->step_json.items);
		memset(&g->step_json, 0, sizeof(g->step_json));
		for (i = first_seg; rc == SF_OK && i < w->entry->segs.count; i++)
			if (!seg_push(&g->step_json, w->entry->segs.items[i].shard,
				      w->entry->segs.items[i].shard_offset, w->entry->segs.items[i].length,
				      w->entry->segs.items[i].subst))
				rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		g->has_step_json = 1;
		g->step_json_mtime_sec = w->entry->mtime_sec;
		g->step_json_mtime_nsec = w->entry->mtime_nsec;
	}
	return rc;
}

static sf_err walk_value(walker *w, sf_error *err)
{
	const json_rule *rule = match_rule(w, 1);

	if (rule && rule->kind != RULE_STEP)
		return walk_batch(w, rule, err);
	if (rule || (w->depth < MAX_RULE_DEPTH && match_rule(w, 0)))
		return walk_container(w, rule, err);
	return sf_jscan_skip_value(w->scan, NULL, NULL, NULL, err);
}

/* Pack one JSON file whose batches the plan locates, with the calling
   thread's scanner and copy buffer. */
static sf_err pack_json_file(packer *p, src_entry *entry, const json_plan *plan, sf_jscan **scanner,
			     unsigned char *buffer, sf_error *err)
{
	src_reader reader;
	walker w;
	sf_jscan_options so;
	char *full = NULL;
	sf_jtok tok;
	sf_err rc;

	memset(&reader, 0, sizeof(reader));
	reader.fd = -1;
	memset(&w, 0, sizeof(w));
	rc = open_source(p, entry, &reader, &full, err);
	if (rc != SF_OK)
		goto out;
	memset(&so, 0, sizeof(so));
	so.max_depth = p->options->max_depth;
	so.reject_duplicate_keys = 1;
	so.allow_nan = 1;
	/* the scanner reads the fd front to back; copies use pread or its
	   window. One scanner serves every file: its window is reused. */
	if (*scanner)
		rc = sf_jscan_reopen_fd(*scanner, reader.fd, full, err);
	else
		rc = sf_jscan_open_fd(scanner, reader.fd, full, &so, err);
	if (rc != SF_OK)
		goto out;
	w.scan = *scanner;
	reader.scan = w.scan;
	reader.buffer = buffer;
	w.p = p;
	w.entry = entry;
	w.reader = &reader;
	w.plan = plan;
	w.full = full;
	rc = outer_shard(&w, err);
	if (rc == SF_OK)
		rc = walk_value(&w, err);
	if (rc == SF_OK)
		rc = sf_jscan_next(w.scan, &tok, err);
	if (rc == SF_OK && tok.type != SF_JTOK_EOF)
		rc = layout_error(full, tok.start, "expected the end of the file", err);
	if (rc == SF_OK)
		rc = close_run(&w, err);
	if (rc == SF_OK)
		rc = emit_literal(&w, entry->size, err);
	if (rc == SF_OK && (reader.pos != entry->size || sf_jscan_offset(w.scan) != entry->size))
		rc = sf_error_set(err, SF_ERR_IO, "'%s': file changed while being packed", full);
	if (rc == SF_OK)
		rc = finish_source(p, entry, &reader, err);
	if (rc == SF_OK && entry->segs.total != entry->size)
		rc = sf_error_set(err, SF_ERR_IO, "'%s': internal size mismatch (%" PRIu64 " != %" PRIu64 ")",
				  full, entry->segs.total, entry->size);
out:
	while (w.depth > 0)
		free(w.path[--w.depth]);
	if (w.batch) {
		batch_rec_release(w.batch);
		free(w.batch);
	}
	if (reader.fd >= 0)
		close(reader.fd);
	free(full);
	return rc;
}

/* The plans of each layout (docs/VIEWS.md). */
static const json_rule whole_file_batch[] = {
	{ { NULL }, RULE_BATCH, "{file}", 1 },
};
static const json_rule per_step_manager[] = {
	{ { "last_batch_received", "$", NULL }, RULE_BATCH, "last_batch_received/batch_{seq}.json", 0 },
	{ { "last_batch_sent", "$", NULL }, RULE_BATCH, "last_batch_sent/batch_{seq}.json", 0 },
};
static const json_rule per_step_file[] = {
	{ { "data", "*", "#", NULL }, RULE_BATCH, "{1}/batch_{seq}.json", 0 },
	{ { "built_batches", "#", NULL }, RULE_BATCH, "built_batches/batch_{seq}.json", 0 },
};
static const json_rule split_rows_file[] = {
	{ { NULL }, RULE_ROWS, "{file}", 1 },
};
static const json_rule monolithic_manager[] = {
	{ { "$", NULL }, RULE_STEP, NULL, 0 },
	{ { "$", "data", "*", NULL }, RULE_ROWS, "{2}.json", 0 },
	{ { "$", "built_batches", "#", NULL }, RULE_BATCH, "built_batches/batch_{seq}.json", 0 },
};

/* ---- which file is what ------------------------------------------------ */

enum { LAYOUT_CURRENT, LAYOUT_PER_BATCH, LAYOUT_PER_STEP, LAYOUT_MONOLITHIC, LAYOUT_SPLIT };

static const char *const layout_names[] = { "current", "per-batch", "per-step", "monolithic", "split" };

typedef struct execution {
	char *dir;             /* relative path of the folder holding batch_manager.json */
	char *pipeline_dir;    /* current layout: the folder holding steps_data/ */
	char *pipeline_name;
	char *pipeline_sig;
	char *exec_sig;
	int layout;
} execution;

static void execution_release(execution *x)
{
	free(x->dir);
	free(x->pipeline_dir);
	free(x->pipeline_name);
	free(x->pipeline_sig);
	free(x->exec_sig);
}

/* "<dir>/<name>" relative, "" dir allowed. */
static char *rel_join(const char *dir, const char *name)
{
	return *dir ? sf_path_join(dir, name) : sf_strdup(name);
}

/* 1 when rel is below dir: sets *rest to the part after "dir/". */
static int below(const char *rel, const char *dir, const char **rest)
{
	size_t n = strlen(dir);

	if (n == 0) {
		*rest = rel;
		return 1;
	}
	if (strncmp(rel, dir, n) != 0 || rel[n] != '/')
		return 0;
	*rest = rel + n + 1;
	return 1;
}

/*
 * SRC may be one execution folder of the current layout
 * (<name>/<sig>/executions/<exec>): its batches are then in the pipeline's
 * shared steps_data/, outside SRC. That folder is read too, for the step
 * views only; source/ still shows SRC alone.
 */
static sf_err add_external_steps_data(packer *p, const path_map *map, sf_error *err)
{
	char *real = NULL, *executions = NULL, *sig = NULL, *pipeline = NULL, *steps_data = NULL;
	const char *saved_src = p->src;
	struct stat st;
	size_t first, i;
	sf_err rc = SF_OK;

	if (!path_map_find(p, map, "batch_manager.json") || !path_map_find(p, map, "batch_manager_steps") ||
	    path_map_find(p, map, "steps_data"))
		return SF_OK;
	real = realpath(p->src, NULL);
	executions = real ? parent_dir(real) : NULL;
	sig = executions ? parent_dir(executions) : NULL;
	pipeline = sig ? parent_dir(sig) : NULL;
	if (!pipeline || strcmp(base_name(executions), "executions") != 0 || !*pipeline)
		goto out;
	steps_data = sf_path_join(pipeline, "steps_data");
	if (!steps_data || stat(steps_data, &st) != 0 || !S_ISDIR(st.st_mode))
		goto out;
	p->external_root = pipeline;
	pipeline = NULL;
	first = p->entry_count;
	p->src = p->external_root;
	rc = walk(p, "steps_data", 1, err);
	p->src = saved_src;
	for (i = first; i < p->entry_count; i++)
		p->entries[i].base = p->external_root;
out:
	free(real);
	free(executions);
	free(sig);
	free(pipeline);
	free(steps_data);
	return rc;
}

/*
 * Every folder holding a batch_manager.json is an execution. Its layout:
 * under `<name>/<sig>/executions/<exec>/` the current one; with
 * batch_manager_steps/<step>/batch_manager_step.json per-batch; with
 * batch_manager_steps/<step>.json per-step; otherwise monolithic.
 */
static sf_err find_executions(packer *p, const path_map *map, execution **out, size_t *count,
			      sf_error *err)
{
	execution *list = NULL;
	size_t n = 0, capacity = 0, i, j;
	int ok;

	for (i = 0; i < p->entry_count; i++) {
		src_entry *e = &p->entries[i];
		char *dir, *executions, *sig_dir, *name_dir, *steps_dir;
		execution x;

		if (e->type != SF_NODE_FILE || strcmp(base_name(e->path), "batch_manager.json") != 0)
			continue;
		memset(&x, 0, sizeof(x));
		dir = parent_dir(e->path);
		executions = dir ? parent_dir(dir) : NULL;
		sig_dir = executions ? parent_dir(executions) : NULL;
		name_dir = sig_dir ? parent_dir(sig_dir) : NULL;
		steps_dir = dir ? rel_join(dir, "batch_manager_steps") : NULL;
		if (!name_dir || !steps_dir) {
			free(dir);
			free(executions);
			free(sig_dir);
			free(steps_dir);
			*out = list;
			*count = n;
			return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		}
		x.dir = dir;
		if (!*dir && p->external_root) {
			char *real = realpath(p->src, NULL);
			char *up = real ? parent_dir(real) : NULL, *sig_path = up ? parent_dir(up) : NULL;

			x.layout = LAYOUT_CURRENT;
			x.pipeline_dir = sf_strdup("");
			x.exec_sig = sf_strdup(real ? base_name(real) : "");
			x.pipeline_sig = sf_strdup(sig_path ? base_name(sig_path) : "");
			x.pipeline_name = sf_strdup(base_name(p->external_root));
			free(real);
			free(up);
			free(sig_path);
		} else if (*dir && strcmp(base_name(executions), "executions") == 0 && *sig_dir) {
			x.layout = LAYOUT_CURRENT;
			x.pipeline_dir = sf_strdup(name_dir);
			x.exec_sig = sf_strdup(base_name(dir));
			x.pipeline_sig = sf_strdup(base_name(sig_dir));
			x.pipeline_name = sf_strdup(*name_dir ? base_name(name_dir) : base_name(p->src));
		} else {
			src_entry *steps = path_map_find(p, map, steps_dir);
			char *parent = parent_dir(dir);

			x.layout = LAYOUT_MONOLITHIC;
			if (steps && steps->type == SF_NODE_DIR) {
				x.layout = LAYOUT_PER_STEP;
				for (j = 0; j < p->entry_count; j++) {
					const char *rest;

					if (below(p->entries[j].path, steps_dir, &rest) && strchr(rest, '/') &&
					    strcmp(base_name(rest), "batch_manager_step.json") == 0) {
						x.layout = LAYOUT_PER_BATCH;
						break;
					}
				}
			}
			x.pipeline_dir = sf_strdup(dir);
			x.exec_sig = sf_strdup(*dir ? base_name(dir) : base_name(p->src));
			x.pipeline_sig = sf_strdup(x.exec_sig ? x.exec_sig : "");
			x.pipeline_name = sf_strdup(parent && *parent && x.layout != LAYOUT_MONOLITHIC
							    ? base_name(parent) : (x.exec_sig ? x.exec_sig : ""));
			free(parent);
		}
		free(executions);
		free(sig_dir);
		free(name_dir);
		free(steps_dir);
		VEC_PUSH(list, n, capacity, x, ok);
		if (!ok || !x.exec_sig || !x.pipeline_sig || !x.pipeline_name || !x.pipeline_dir) {
			if (!ok)
				execution_release(&x);
			*out = list;
			*count = n;
			return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		}
	}
	/* the split layout: manager_meta.json beside step_<n>_data.* files */
	for (i = 0; i < p->entry_count; i++) {
		src_entry *e = &p->entries[i];
		char *dir, *manager;
		execution x;
		int has_data = 0;

		if (e->type != SF_NODE_FILE || strcmp(base_name(e->path), "manager_meta.json") != 0)
			continue;
		dir = parent_dir(e->path);
		manager = dir ? rel_join(dir, "batch_manager.json") : NULL;
		if (!manager) {
			free(dir);
			*out = list;
			*count = n;
			return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		}
		for (j = 0; j < p->entry_count && !has_data; j++) {
			char *parent = parent_dir(p->entries[j].path);

			has_data = parent && strcmp(parent, dir) == 0 &&
				   strncmp(base_name(p->entries[j].path), "step_", 5) == 0 &&
				   strstr(base_name(p->entries[j].path), "_data.") != NULL;
			free(parent);
		}
		if (!has_data || path_map_find(p, map, manager)) {
			free(dir);
			free(manager);
			continue;
		}
		free(manager);
		memset(&x, 0, sizeof(x));
		x.layout = LAYOUT_SPLIT;
		x.dir = dir;
		x.pipeline_dir = sf_strdup(dir);
		x.exec_sig = sf_strdup(*dir ? base_name(dir) : base_name(p->src));
		x.pipeline_sig = sf_strdup("");
		x.pipeline_name = sf_strdup(x.exec_sig ? x.exec_sig : "");
		VEC_PUSH(list, n, capacity, x, ok);
		if (!ok || !x.exec_sig || !x.pipeline_sig || !x.pipeline_name || !x.pipeline_dir) {
			if (!ok)
				execution_release(&x);
			*out = list;
			*count = n;
			return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		}
	}
	*out = list;
	*count = n;
	return SF_OK;
}

/* "step_<n>_data.<ext>": 1, n and the extension. */
static int split_file(const char *name, unsigned long *index, const char **ext)
{
	char *end;

	if (strncmp(name, "step_", 5) != 0 || name[5] < '0' || name[5] > '9')
		return 0;
	*index = strtoul(name + 5, &end, 10);
	if (strncmp(end, "_data.", 6) != 0 || *index > 1000000)
		return 0;
	*ext = end + 6;
	return 1;
}

static char *split_group_key(const execution *x, unsigned long index)
{
	char *key = malloc(strlen(x->dir) + 32);

	if (key)
		sprintf(key, "%s\n#%lu", x->dir, index);
	return key;
}

/* The current layout's group of a step: steps_data/<step>_<signature>. */
static char *current_group_key(const execution *x, const char *step, const char *sig)
{
	char *steps_data = rel_join(x->pipeline_dir, "steps_data");
	char *name = malloc(strlen(step) + strlen(sig) + 2);
	char *key = NULL;

	if (steps_data && name) {
		sprintf(name, "%s_%s", step, sig);
		key = sf_path_join(steps_data, name);
	}
	free(steps_data);
	free(name);
	return key;
}

static char *named_group_key(const execution *x, const char *step)
{
	char *key = malloc(strlen(x->dir) + strlen(step) + 2);

	if (key)
		sprintf(key, "%s\n%s", x->dir, step);
	return key;
}

static sf_err mark_whole_batch(packer *p, src_entry *e, const char *key, const char *label,
			       const char *name, long execution_id, sf_error *err)
{
	long g = group_get(p, key, label, err);

	if (g < 0)
		return err ? err->code : SF_ERR_NOMEM;
	e->role = ROLE_WHOLE_BATCH;
	e->group = g;
	e->execution = execution_id;
	e->batch_name = sf_strdup(name);
	if (!e->batch_name)
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	if (!batch_number(base_name(e->path), &e->seq)) {
		/* batch_<seq>_<hash>.json: the number before the hash */
		const char *b = base_name(e->path);

		e->seq = strncmp(b, "batch_", 6) == 0 ? strtoull(b + 6, NULL, 10) : 0;
	}
	return SF_OK;
}

/*
 * Paths inside a cache's JSON are absolute paths of the machine that wrote
 * it. Each one naming a file under batch_manager_steps/ is resolved inside
 * the execution folder being packed; a file it names that is not there is
 * an error (the cache is incomplete), reported with both paths.
 */
static sf_err check_references(packer *p, const path_map *map, const execution *x, const char *rel,
			       sf_error *err)
{
	char *full = sf_path_join(p->src, rel);
	sf_jscan *scan = NULL;
	sf_jscan_options so;
	sf_jtok tok;
	int fd = -1;
	sf_err rc = SF_OK;

	if (!full)
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	memset(&so, 0, sizeof(so));
	so.allow_nan = 1;
	so.max_depth = p->options->max_depth;
	if (fd < 0 || sf_jscan_open_fd(&scan, fd, full, &so, NULL) != SF_OK)
		goto out; /* unreadable or not JSON: reported where it is packed */
	while (sf_jscan_next(scan, &tok, NULL) == SF_OK && tok.type != SF_JTOK_EOF) {
		const char *marker;
		char *path, *wanted;

		if (tok.type != SF_JTOK_STRING || !tok.text || tok.text[0] != '/' || tok.text_len < 5 ||
		    strcmp(tok.text + tok.text_len - 5, ".json") != 0)
			continue;
		path = decode_key(tok.text);
		marker = path ? strstr(path, "/batch_manager_steps/") : NULL;
		if (!marker) {
			free(path);
			continue;
		}
		while (strstr(marker + 1, "/batch_manager_steps/"))
			marker = strstr(marker + 1, "/batch_manager_steps/");
		if (strstr(marker, "/../") || strstr(marker, "/./") || strstr(marker, "//")) {
			/* a step name like "../x" made this path leave its folder:
			   never followed, so nothing to check */
			free(path);
			continue;
		}
		wanted = rel_join(x->dir, marker + 1);
		if (wanted && !path_map_find(p, map, wanted)) {
			rc = sf_error_set(err, SF_ERR_NOTFOUND,
					  "'%s': byte %" PRIu64 ": refers to '%s', which would be '%s' in this cache, and it is missing",
					  full, tok.start, path, wanted);
			free(wanted);
			free(path);
			break;
		}
		free(wanted);
		free(path);
	}
out:
	sf_jscan_free(scan);
	if (fd >= 0)
		close(fd);
	free(full);
	return rc;
}

/* Give every file its role, from the executions' layouts. */
static sf_err classify(packer *p, const path_map *map, execution *xs, size_t count, sf_error *err)
{
	size_t i, k;
	sf_err rc = SF_OK;

	/* steps_data/<step>_<sig>/batch_<seq>.json of current-layout pipelines */
	for (i = 0; rc == SF_OK && i < p->entry_count; i++) {
		src_entry *e = &p->entries[i];
		uint64_t seq;
		char *dir, *grand;

		if (e->type != SF_NODE_FILE || !batch_number(base_name(e->path), &seq))
			continue;
		dir = parent_dir(e->path);
		grand = dir ? parent_dir(dir) : NULL;
		if (!grand) {
			free(dir);
			return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		}
		for (k = 0; k < count; k++) {
			char *steps_data = rel_join(xs[k].pipeline_dir, "steps_data");

			if (xs[k].layout == LAYOUT_CURRENT && steps_data && strcmp(grand, steps_data) == 0) {
				free(steps_data);
				rc = mark_whole_batch(p, e, dir, base_name(dir), base_name(e->path), (long)k, err);
				break;
			}
			free(steps_data);
		}
		free(dir);
		free(grand);
	}
	for (k = 0; rc == SF_OK && k < count; k++) {
		execution *x = &xs[k];
		char *steps_dir = rel_join(x->dir, "batch_manager_steps");
		char *manager = rel_join(x->dir, "batch_manager.json");

		if (!steps_dir || !manager) {
			free(steps_dir);
			free(manager);
			return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		}
		if (x->layout != LAYOUT_SPLIT && x->layout != LAYOUT_MONOLITHIC) {
			rc = check_references(p, map, x, manager, err);
			for (i = 0; rc == SF_OK && i < p->entry_count; i++) {
				const char *rest;

				if (p->entries[i].type == SF_NODE_FILE && below(p->entries[i].path, steps_dir, &rest) &&
				    strcmp(base_name(rest), "batch_manager_step.json") == 0)
					rc = check_references(p, map, x, p->entries[i].path, err);
			}
		}
		for (i = 0; x->layout == LAYOUT_SPLIT && rc == SF_OK && i < p->entry_count; i++) {
			src_entry *e = &p->entries[i];
			char *parent = parent_dir(e->path), *key = NULL, label[32];
			unsigned long index;
			const char *ext;
			long g;
			int ok;

			if (!parent || strcmp(parent, x->dir) != 0 || e->type != SF_NODE_FILE ||
			    e->role != ROLE_PLAIN || !split_file(base_name(e->path), &index, &ext)) {
				free(parent);
				continue;
			}
			free(parent);
			key = split_group_key(x, index);
			snprintf(label, sizeof(label), "step_%lu", index);
			g = key ? group_get(p, key, label, err) : -1;
			free(key);
			if (g < 0) {
				rc = err ? err->code : SF_ERR_NOMEM;
				break;
			}
			e->group = g;
			e->execution = (long)k;
			if (strcmp(ext, "json") == 0) {
				e->role = ROLE_SPLIT_JSON;
				e->batch_name = sf_strdup(base_name(e->path));
			} else if (strcmp(ext, "jsonl") == 0) {
				e->role = ROLE_SPLIT_JSONL;
			} else {
				VEC_PUSH(p->groups[g].extras, p->groups[g].extra_count, p->groups[g].extra_capacity, i, ok);
				if (!ok)
					rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
			}
		}
		for (i = 0; rc == SF_OK && i < p->entry_count; i++) {
			src_entry *e = &p->entries[i];
			const char *rest, *slash;
			char *step = NULL, *key = NULL;

			if (e->type != SF_NODE_FILE || e->role != ROLE_PLAIN)
				continue;
			if (strcmp(e->path, manager) == 0) {
				if (x->layout == LAYOUT_PER_STEP)
					e->role = ROLE_PER_STEP_MANAGER, e->execution = (long)k;
				else if (x->layout == LAYOUT_MONOLITHIC)
					e->role = ROLE_MONOLITHIC, e->execution = (long)k;
				continue;
			}
			if (!below(e->path, steps_dir, &rest))
				continue;
			slash = strchr(rest, '/');
			if (!slash) {
				/* batch_manager_steps/<step>.json */
				size_t len = strlen(rest);

				if (x->layout != LAYOUT_PER_STEP || len <= 5 || strcmp(rest + len - 5, ".json") != 0)
					continue;
				step = sf_strndup(rest, len - 5);
				key = step ? named_group_key(x, step) : NULL;
				e->group = key ? group_get(p, key, step, err) : -1;
				if (e->group >= 0) {
					e->role = ROLE_PER_STEP_FILE;
					e->execution = (long)k;
				} else if (!key) {
					rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
				} else {
					rc = err ? err->code : SF_ERR_NOMEM;
				}
			} else if (strchr(slash + 1, '/') && !strchr(strchr(slash + 1, '/') + 1, '/') &&
				   strncmp(base_name(rest), "batch_", 6) == 0 &&
				   strcmp(base_name(rest) + strlen(base_name(rest)) - 5, ".json") == 0) {
				/* batch_manager_steps/<step>/<sub>/batch_*.json */
				const char *sub = slash + 1;
				size_t sub_len = (size_t)(strchr(sub, '/') - sub);
				char name[SF_MAX_PATH_BYTES];

				step = sf_strndup(rest, (size_t)(slash - rest));
				if (!step)
					return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
				snprintf(name, sizeof(name), "%.*s/%s", (int)sub_len, sub, base_name(rest));
				if (x->layout == LAYOUT_PER_BATCH) {
					key = named_group_key(x, step);
					rc = key ? mark_whole_batch(p, e, key, step, name, (long)k, err)
						 : sf_error_set(err, SF_ERR_NOMEM, "out of memory");
				} else if (x->layout == LAYOUT_CURRENT && sub_len == 13 &&
					   strncmp(sub, "built_batches", 13) == 0) {
					/* an interrupted run's built batches join the step's steps_data group */
					char *step_file = rel_join(steps_dir, step), *step_json = NULL, *sig = NULL;

					step_json = step_file ? sf_path_join(step_file, "batch_manager_step.json") : NULL;
					sig = step_json ? top_level_string(p, step_json, "step_signature") : NULL;
					if (sig) {
						key = current_group_key(x, step, sig);
						if (key) {
							char label[SF_MAX_PATH_BYTES];

							snprintf(label, sizeof(label), "%s_%s", step, sig);
							rc = mark_whole_batch(p, e, key, label, name, (long)k, err);
						}
					}
					free(sig);
					free(step_json);
					free(step_file);
				}
			}
			free(step);
			free(key);
		}
		free(steps_dir);
		free(manager);
	}
	return rc;
}

static packer *sort_context;

/* Whole-batch files by group, then batch number, then path. */
static int compare_whole_batches(const void *a, const void *b)
{
	const src_entry *x = &sort_context->entries[*(const size_t *)a];
	const src_entry *y = &sort_context->entries[*(const size_t *)b];

	if (x->group != y->group)
		return x->group < y->group ? -1 : 1;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return strcmp(x->path, y->path);
}

static int compare_batch_recs(const void *a, const void *b)
{
	const batch_rec *x = a, *y = b;

	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* A JSON-lines file is its step's rows already: stored in the step's
   shard, its bytes serve both the file and (with a final newline added
   when missing) rows.jsonl. */
static sf_err pack_jsonl_file(packer *p, src_entry *e, sf_error *err)
{
	batch_rec rec;
	step_group *g;
	long shard;
	uint64_t offset = 0;
	int fd, ok, missing_newline;
	sf_err rc = group_shard(p, e->group, &shard, err);

	if (rc == SF_OK)
		rc = pack_plain_file(p, e, shard, err);
	if (rc != SF_OK)
		return rc;
	memset(&rec, 0, sizeof(rec));
	rec.order = p->batch_order++;
	rec.mtime_sec = e->mtime_sec;
	rec.mtime_nsec = e->mtime_nsec;
	{
		/* count its lines (rows) */
		char *full = sf_path_join(p->src, e->path);

		fd = full ? open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
		free(full);
		while (fd >= 0 && offset < e->size) {
			ssize_t got = sf_pread_full(fd, p->buffer, COPY_BUFFER_BYTES, offset);
			ssize_t i;

			if (got <= 0)
				break;
			for (i = 0; i < got; i++)
				rec.rows_count += p->buffer[i] == '\n';
			offset += (uint64_t)got;
		}
		if (fd >= 0)
			close(fd);
	}
	if (offset != e->size)
		return sf_error_io(err, errno ? errno : EIO, "'%s/%s': cannot read", p->src, e->path);
	missing_newline = e->size && p->buffer[(offset - 1) % COPY_BUFFER_BYTES] != '\n';
	if (missing_newline)
		rec.rows_count++;
	if (!seg_push(&rec.rows, e->segs.count ? e->segs.items[0].shard : (uint32_t)shard,
		      e->segs.count ? e->segs.items[0].shard_offset : 0, e->size, SF_SUBST_NONE) ||
	    (missing_newline && !seg_push(&rec.rows, (uint32_t)shard, 0, 1, SF_SUBST_NONE))) {
		free(rec.rows.items);
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	}
	g = group_at(p, e->group);
	VEC_PUSH(g->batches, g->batch_count, g->batch_capacity, rec, ok);
	if (!ok) {
		free(rec.rows.items);
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	}
	g->rows += rec.rows_count;
	if (e->mtime_sec > g->mtime_sec) {
		g->mtime_sec = e->mtime_sec;
		g->mtime_nsec = e->mtime_nsec;
	}
	return SF_OK;
}

/*
 * Whole batch files (current and per-batch layouts) of different steps go
 * to different shards, so two threads can pack them at once: each takes
 * whole steps (balanced by their bytes), in the usual order within a
 * step. What they share: p->shards (room reserved, shard_open locked), the
 * progress counter, batch_order and list_lines_used (atomics).
 */
typedef struct batch_lane {
	packer *p;
	size_t *files;         /* entry numbers, in packing order */
	size_t count;
	sf_jscan *scanner;
	unsigned char *buffer;
	sf_err rc;
	sf_error error;
} batch_lane;

static void *batch_lane_main(void *arg)
{
	batch_lane *lane = arg;
	size_t i;

	for (i = 0; lane->rc == SF_OK && i < lane->count; i++) {
		src_entry *e = &lane->p->entries[lane->files[i]];
		json_plan plan = { whole_file_batch, 1, "", e->group, e->batch_name };

		lane->rc = pack_json_file(lane->p, e, &plan, &lane->scanner, lane->buffer, &lane->error);
	}
	if (lane->rc != SF_OK)
		__atomic_store_n(&lane->p->stop, 1, __ATOMIC_RELAXED);
	return NULL;
}

/* Split the sorted whole-batch files into two lanes by step; 0 when it
   is not worth a thread (one step, one thread, one file). */
static int split_lanes(packer *p, const size_t *order, size_t n, batch_lane lanes[2])
{
	uint64_t load[2] = { 0, 0 };
	int *lane_of = NULL;
	size_t i, groups = 0;
	long last = -1;

	if (n < 2 || p->options->threads < 2)
		return 0;
	for (i = 0; i < n; i++) {
		if (p->entries[order[i]].group != last)
			groups++;
		last = p->entries[order[i]].group;
	}
	if (groups < 2)
		return 0;
	lane_of = calloc(p->group_count ? p->group_count : 1, sizeof(*lane_of));
	lanes[0].files = malloc(n * sizeof(size_t));
	lanes[1].files = malloc(n * sizeof(size_t));
	if (!lane_of || !lanes[0].files || !lanes[1].files) {
		free(lane_of);
		return 0;
	}
	/* the larger steps first, each to the lighter lane */
	for (;;) {
		long best = -1;

		for (i = 0; i < p->group_count; i++)
			if (!lane_of[i] && (best < 0 || p->groups[i].expected_bytes > p->groups[best].expected_bytes))
				best = (long)i;
		if (best < 0)
			break;
		lane_of[best] = load[0] <= load[1] ? 1 : 2;
		load[lane_of[best] - 1] += p->groups[best].expected_bytes;
	}
	for (i = 0; i < n; i++) {
		long g = p->entries[order[i]].group;
		batch_lane *lane = &lanes[g >= 0 && lane_of[g] == 2 ? 1 : 0];

		lane->files[lane->count++] = order[i];
	}
	free(lane_of);
	return lanes[0].count > 0 && lanes[1].count > 0;
}

/* Pack the whole batch files, in `order`: on two threads when
   split_lanes finds two lanes, else on this one. */
static sf_err pack_whole_batches(packer *p, size_t *order, size_t n, sf_error *err)
{
	batch_lane lanes[2];
	pthread_t thread;
	size_t reserve, i;
	sf_err result = SF_OK, *rc = &result;
	int started;

	memset(lanes, 0, sizeof(lanes));
	if (!split_lanes(p, order, n, lanes)) {
		free(lanes[0].files);
		free(lanes[1].files);
		lanes[0].p = p;
		lanes[0].files = order;
		lanes[0].count = n;
		lanes[0].scanner = p->scanner;
		lanes[0].buffer = p->buffer;
		batch_lane_main(&lanes[0]);
		p->scanner = lanes[0].scanner;
		if (lanes[0].rc != SF_OK && err)
			*err = lanes[0].error;
		return lanes[0].rc;
	}
	/* every step's first shard now, in step order (stable shard numbers);
	   room for the ones rolled over past shard_bytes */
	reserve = p->shard_count + 8;
	for (i = 0; i < p->group_count; i++)
		reserve += 1 + p->groups[i].expected_bytes / p->options->shard_bytes;
	*rc = SF_OK;
	for (i = 0; *rc == SF_OK && i < n; i++) {
		long shard, g = p->entries[order[i]].group;

		if (g >= 0 && p->groups[g].shard < 0)
			*rc = group_shard(p, g, &shard, err);
	}
	if (*rc == SF_OK && reserve > p->shard_capacity) {
		out_shard *grown = realloc(p->shards, reserve * sizeof(*grown));

		if (!grown)
			*rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		else {
			p->shards = grown;
			p->shard_capacity = reserve;
		}
	}
	lanes[0].p = lanes[1].p = p;
	lanes[0].scanner = p->scanner;
	lanes[0].buffer = p->buffer;
	lanes[1].buffer = malloc(COPY_BUFFER_BYTES);
	if (*rc == SF_OK && !lanes[1].buffer)
		*rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	if (*rc != SF_OK) {
		free(lanes[0].files);
		free(lanes[1].files);
		free(lanes[1].buffer);
		return result;
	}
	p->main_thread = pthread_self();
	p->parallel = 1;
	started = pthread_create(&thread, NULL, batch_lane_main, &lanes[1]) == 0;
	if (!started)
		batch_lane_main(&lanes[1]); /* no thread: one after the other */
	batch_lane_main(&lanes[0]);
	if (started)
		pthread_join(thread, NULL);
	p->parallel = 0;
	p->scanner = lanes[0].scanner;
	sf_jscan_free(lanes[1].scanner);
	free(lanes[1].buffer);
	/* report the failure that stopped the other lane, not its "interrupted" */
	if (lanes[0].rc != SF_OK && (lanes[1].rc == SF_OK || strcmp(lanes[0].error.message, "interrupted") != 0 ||
				     (p->options->cancel && __atomic_load_n(p->options->cancel, __ATOMIC_RELAXED)))) {
		*rc = lanes[0].rc;
		if (err)
			*err = lanes[0].error;
	} else if (lanes[1].rc != SF_OK) {
		*rc = lanes[1].rc;
		if (err)
			*err = lanes[1].error;
	}
	free(lanes[0].files);
	free(lanes[1].files);
	return result;
}

/* Pack every file that holds batches, then close the step shards and
   assemble each step's rows.jsonl in seq_no order. */
static sf_err pack_batches(packer *p, execution *xs, sf_error *err)
{
	size_t *order = NULL, n = 0, i, g;
	sf_err rc = SF_OK;

	order = calloc(p->entry_count ? p->entry_count : 1, sizeof(*order));
	if (!order)
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	for (i = 0; i < p->entry_count; i++)
		if (p->entries[i].role == ROLE_WHOLE_BATCH)
			order[n++] = i;
	sort_context = p;
	if (n > 1)
		qsort(order, n, sizeof(*order), compare_whole_batches);
	rc = pack_whole_batches(p, order, n, err);
	for (i = 0; rc == SF_OK && i < p->entry_count; i++) {
		src_entry *e = &p->entries[i];
		json_plan plan = { NULL, 0, "", -1, NULL };

		if (e->role == ROLE_PER_STEP_FILE) {
			plan.rules = per_step_file;
			plan.rule_count = sizeof(per_step_file) / sizeof(*per_step_file);
			plan.file_group = e->group;
		} else if (e->role == ROLE_PER_STEP_MANAGER) {
			plan.rules = per_step_manager;
			plan.rule_count = sizeof(per_step_manager) / sizeof(*per_step_manager);
		} else if (e->role == ROLE_MONOLITHIC) {
			plan.rules = monolithic_manager;
			plan.rule_count = sizeof(monolithic_manager) / sizeof(*monolithic_manager);
		} else if (e->role == ROLE_SPLIT_JSON) {
			plan.rules = split_rows_file;
			plan.rule_count = 1;
			plan.file_group = e->group;
			plan.file_name = e->batch_name;
		} else if (e->role == ROLE_SPLIT_JSONL) {
			rc = pack_jsonl_file(p, e, err);
			continue;
		} else {
			continue;
		}
		plan.group_prefix = xs[e->execution].dir;
		rc = pack_json_file(p, e, &plan, &p->scanner, p->buffer, err);
	}
	free(order);
	for (g = 0; g < p->group_count; g++) {
		step_group *group = &p->groups[g];

		if (group->shard >= 0) {
			sf_err close_rc = shard_close(p, group->shard, err);

			if (rc == SF_OK)
				rc = close_rc;
			group->shard = -1;
		}
		for (i = 0; i < group->shard_id_count; i++)
			group->stored_bytes += p->shards[group->shard_ids[i]].compressed_bytes;
		if (group->batch_count > 1)
			qsort(group->batches, group->batch_count, sizeof(*group->batches), compare_batch_recs);
		for (i = 0; rc == SF_OK && i < group->batch_count; i++) {
			seg_vec *rows = &group->batches[i].rows;
			size_t k;

			for (k = 0; k < rows->count; k++)
				if (!seg_push(&group->rows_segs, rows->items[k].shard, rows->items[k].shard_offset,
					      rows->items[k].length, rows->items[k].subst))
					rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		}
	}
	return rc;
}

/* ---- the step views ------------------------------------------------------ */

/* Join a view prefix ("" or "pipe/exec") and a name. */
static char *view_path(const char *prefix, const char *name)
{
	return *prefix ? sf_path_join(prefix, name) : sf_strdup(name);
}

static char *json_quote(const char *text)
{
	json_t *s = json_string(text);
	char *out;

	if (!s) {
		char *hex = sf_hex_encode(text, strlen(text));

		s = json_string(hex ? hex : "");
		free(hex);
	}
	out = json_dumps(s, JSON_ENCODE_ANY);
	json_decref(s);
	return out;
}

static int compare_strings(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;

	if (!x || !y)
		return !x - !y;
	return strcmp(x, y);
}

/* One read-only file of a step's folder, for the index encoder. */
static void view_file(sf_index_entry *item, const char *path, int64_t sec, uint32_t nsec,
		      const seg_vec *segs)
{
	memset(item, 0, sizeof(*item));
	item->path = path;
	item->type = SF_NODE_FILE;
	item->has_mode = 1;
	item->mode = 0444;
	item->mtime_sec = sec;
	item->mtime_nsec = nsec;
	if (segs) {
		item->segments = segs->items;
		item->segment_count = segs->count;
	}
}

/* A step's folder: step.json, batches/, rows.jsonl and the step's other
   files, encoded straight from the batch records. */
static sf_err build_step_view(packer *p, step_group *group, const seg_vec *step_json,
			      int64_t step_sec, uint32_t step_nsec, int64_t mtime_sec, uint32_t mtime_nsec,
			      long *index_id, sf_error *err)
{
	size_t b, count = group ? group->batch_count : 0, extras = group ? group->extra_count : 0, n = 0;
	sf_index_entry *list = calloc(count + extras + 3, sizeof(*list));
	char **names = calloc(count ? count : 1, sizeof(*names));
	char *text = NULL;
	size_t text_len = 0;
	sf_err rc;

	if (!list || !names) {
		free(list);
		free(names);
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	}
	if (step_json)
		view_file(&list[n++], "step.json", step_sec, step_nsec, step_json);
	list[n].path = "batches";
	list[n].type = SF_NODE_DIR;
	list[n].has_mode = 1;
	list[n].mode = 0555;
	list[n].mtime_sec = mtime_sec;
	list[n].mtime_nsec = mtime_nsec;
	n++;
	for (b = 0; b < count; b++) {
		batch_rec *rec = &group->batches[b];

		names[b] = rec->name ? sf_path_join("batches", rec->name) : NULL;
	}
	/* two batches with one name (odd input): the later ones get "~N" */
	{
		char **sorted = malloc((count ? count : 1) * sizeof(*sorted));

		if (sorted) {
			if (count)
				memcpy(sorted, names, count * sizeof(*sorted));
			if (count > 1)
				qsort(sorted, count, sizeof(*sorted), compare_strings);
			for (b = 1; b < count; b++) {
				if (sorted[b] && sorted[b - 1] && strcmp(sorted[b], sorted[b - 1]) == 0) {
					size_t k;

					for (k = 0; k < count; k++) {
						if (names[k] == sorted[b]) {
							char *renamed = malloc(strlen(names[k]) + 24);

							if (renamed) {
								sprintf(renamed, "%s~%zu", names[k], k);
								free(names[k]);
								names[k] = renamed;
							}
							break;
						}
					}
				}
			}
			free(sorted);
		}
	}
	for (b = 0; b < count; b++) {
		batch_rec *rec = &group->batches[b];

		if (names[b])
			view_file(&list[n++], names[b], rec->mtime_sec, rec->mtime_nsec, &rec->segs);
	}
	view_file(&list[n++], "rows.jsonl", mtime_sec, mtime_nsec, group ? &group->rows_segs : NULL);
	for (b = 0; b < extras; b++) {
		src_entry *extra = &p->entries[group->extras[b]];

		view_file(&list[n++], base_name(extra->path), extra->mtime_sec, extra->mtime_nsec, &extra->segs);
	}
	rc = sf_index_encode_entries(list, n, 0, &text, &text_len, err);
	if (rc == SF_OK)
		rc = write_index_text(p, text, text_len, index_id, err);
	else
		free(text);
	for (b = 0; b < count; b++)
		free(names[b]);
	free(names);
	free(list);
	return rc;
}

/* Step names in pipeline order: pipeline.yaml, else batch_manager.json's
   "steps", then any step the files held that neither listed. */
/*
 * The split layout has no per-step file: each step's own metadata is its
 * object in manager_meta.json's "steps" list (the one whose "index" is N).
 * Give step group N the byte range of that object, as segments over the
 * stored manager_meta.json, so step_N/step.json serves those exact bytes.
 * Objects without a plain integer "index" are skipped.
 */
static long find_group(const packer *p, const char *key);

static sf_err split_step_json(packer *p, const execution *x, const src_entry *meta,
			      const char *raw, size_t raw_len, sf_error *err)
{
	sf_jscan_options options = { 0 };
	sf_jscan *scan = NULL;
	sf_jtok tok;
	sf_err rc;

	options.allow_nan = 1;
	rc = sf_jscan_open_mem(&scan, raw, raw_len, meta->path, &options, err);
	if (rc == SF_OK)
		rc = sf_jscan_next(scan, &tok, err);
	if (rc != SF_OK || tok.type != SF_JTOK_OBJECT_BEGIN)
		goto out;
	while (rc == SF_OK && !sf_jscan_at_container_end(scan)) {
		int is_steps;

		rc = sf_jscan_next(scan, &tok, err);
		if (rc != SF_OK || tok.type != SF_JTOK_KEY)
			break;
		is_steps = tok.text && strcmp(tok.text, "steps") == 0;
		if (!is_steps) {
			rc = sf_jscan_skip_value(scan, NULL, NULL, NULL, err);
			continue;
		}
		rc = sf_jscan_next(scan, &tok, err);
		if (rc != SF_OK || tok.type != SF_JTOK_ARRAY_BEGIN)
			break;
		while (rc == SF_OK && !sf_jscan_at_container_end(scan)) {
			uint64_t start, end;
			long long index = -1;

			rc = sf_jscan_next(scan, &tok, err);
			if (rc != SF_OK)
				break;
			if (tok.type != SF_JTOK_OBJECT_BEGIN) {
				/* a scalar needs nothing more; a list is walked to its end */
				int depth = tok.depth;

				if (tok.type != SF_JTOK_ARRAY_BEGIN)
					continue;
				do
					rc = sf_jscan_next(scan, &tok, err);
				while (rc == SF_OK && !(tok.type == SF_JTOK_ARRAY_END && tok.depth == depth));
				continue;
			}
			start = tok.start;
			while (rc == SF_OK && !sf_jscan_at_container_end(scan)) {
				int is_index;

				rc = sf_jscan_next(scan, &tok, err);
				if (rc != SF_OK)
					break;
				is_index = tok.text && strcmp(tok.text, "index") == 0;
				if (!is_index) {
					rc = sf_jscan_skip_value(scan, NULL, NULL, NULL, err);
					continue;
				}
				rc = sf_jscan_next(scan, &tok, err);
				if (rc == SF_OK && tok.type == SF_JTOK_NUMBER && tok.text &&
				    strspn(tok.text, "0123456789") == tok.text_len && tok.text_len < 10)
					index = atoll(tok.text);
				else if (rc == SF_OK && (tok.type == SF_JTOK_OBJECT_BEGIN ||
							 tok.type == SF_JTOK_ARRAY_BEGIN))
					rc = sf_error_set(err, SF_ERR_FORMAT, "'%s': byte %" PRIu64
							  ": expected a step index number", meta->path, tok.start);
			}
			if (rc == SF_OK)
				rc = sf_jscan_next(scan, &tok, err); /* the object's '}' */
			if (rc != SF_OK)
				break;
			end = tok.end;
			if (index >= 0) {
				char *key = split_group_key(x, (unsigned long)index);
				long g = key ? find_group(p, key) : -1;
				step_group *group = g >= 0 ? &p->groups[g] : NULL;
				uint64_t at = 0;
				size_t i;

				free(key);
				if (!group || group->has_step_json)
					continue;
				free(group->step_json.items);
				memset(&group->step_json, 0, sizeof(group->step_json));
				for (i = 0; i < meta->segs.count; i++) {
					const sf_segment *seg = &meta->segs.items[i];
					uint64_t from = start > at ? start - at : 0;
					uint64_t to = end - at < seg->length ? end - at : seg->length;

					if (end > at && start < at + seg->length && from < to &&
					    !seg_push(&group->step_json, seg->shard, seg->shard_offset + from,
						      to - from, seg->subst)) {
						rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
						break;
					}
					at += seg->length;
				}
				group->has_step_json = 1;
				group->step_json_mtime_sec = meta->mtime_sec;
				group->step_json_mtime_nsec = meta->mtime_nsec;
			}
		}
		break;
	}
out:
	sf_jscan_free(scan);
	/* The step list is informative: a manager_meta.json the names could not
	   be read from has already been dealt with; here it only means no
	   step.json. */
	if (rc != SF_OK && rc != SF_ERR_NOMEM)
		rc = SF_OK;
	return rc;
}

static sf_err step_names(packer *p, const path_map *map, const execution *x, char ***names_out,
			 size_t *count_out, sf_error *err)
{
	char *yaml_rel = rel_join(x->dir, "pipeline.yaml"), **names = NULL;
	size_t count = 0, capacity = 0, g, i;
	src_entry *yaml;
	sf_err rc = SF_OK;
	int ok;

	if (!yaml_rel)
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	if (x->layout == LAYOUT_SPLIT) {
		/* names by index from manager_meta.json; "step_<n>" where it has none */
		char *meta_rel = rel_join(x->dir, "manager_meta.json");
		size_t raw_len = 0, max_index = 0;
		char *raw = meta_rel ? read_json_text(p, meta_rel, 64u << 20, &raw_len, NULL) : NULL;
		json_t *doc = raw ? json_loadb(raw, raw_len, 0, NULL) : NULL, *step;
		src_entry *meta = meta_rel ? path_map_find(p, map, meta_rel) : NULL;
		size_t si;

		rc = raw && meta ? split_step_json(p, x, meta, raw, raw_len, err) : SF_OK;
		free(yaml_rel);
		free(meta_rel);
		free(raw);
		if (rc != SF_OK) {
			if (doc)
				json_decref(doc);
			return rc;
		}
		for (g = 0; g < p->group_count; g++) {
			size_t prefix = strlen(x->dir);

			if (strncmp(p->groups[g].key, x->dir, prefix) == 0 && p->groups[g].key[prefix] == '\n' &&
			    p->groups[g].key[prefix + 1] == '#') {
				size_t index = strtoul(p->groups[g].key + prefix + 2, NULL, 10);

				if (index + 1 > max_index)
					max_index = index + 1;
			}
		}
		json_array_foreach(json_object_get(doc, "steps"), si, step) {
			if (json_integer_value(json_object_get(step, "index")) + 1 > (json_int_t)max_index)
				max_index = (size_t)json_integer_value(json_object_get(step, "index")) + 1;
		}
		names = calloc(max_index ? max_index : 1, sizeof(*names));
		if (!names) {
			if (doc)
				json_decref(doc);
			return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		}
		json_array_foreach(json_object_get(doc, "steps"), si, step) {
			json_int_t index = json_integer_value(json_object_get(step, "index"));
			const char *name = json_string_value(json_object_get(step, "name"));

			if (index >= 0 && (size_t)index < max_index && name && !names[index])
				names[index] = sf_strdup(name);
		}
		for (i = 0; i < max_index; i++) {
			if (!names[i]) {
				char fallback[32];

				snprintf(fallback, sizeof(fallback), "step_%zu", i);
				names[i] = sf_strdup(fallback);
			}
		}
		if (doc)
			json_decref(doc);
		*names_out = names;
		*count_out = max_index;
		return SF_OK;
	}
	yaml = path_map_find(p, map, yaml_rel);
	if (yaml && yaml->type == SF_NODE_FILE) {
		char *full = sf_path_join(p->src, yaml_rel);

		rc = full ? sf_pipeline_yaml_steps(full, &names, &count, err)
			  : sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		capacity = count;
		free(full);
	}
	free(yaml_rel);
	if (rc != SF_OK)
		return rc;
	if (count == 0 && x->layout != LAYOUT_MONOLITHIC) {
		char *manager_rel = rel_join(x->dir, "batch_manager.json");
		size_t raw_len = 0;
		char *raw = manager_rel ? read_json_text(p, manager_rel, 64u << 20, &raw_len, NULL) : NULL;
		json_t *doc = raw ? json_loadb(raw, raw_len, 0, NULL) : NULL;
		const char *key;
		json_t *value;

		json_object_foreach(json_object_get(doc, "steps"), key, value) {
			char *copy = sf_strdup(key);

			VEC_PUSH(names, count, capacity, copy, ok);
			(void)value;
			if (!ok)
				free(copy);
		}
		if (doc)
			json_decref(doc);
		free(raw);
		free(manager_rel);
	}
	/* steps known only from their data (no pipeline.yaml, or not in it) */
	for (g = 0; x->layout != LAYOUT_CURRENT && g < p->group_count; g++) {
		const char *rest;

		if (strncmp(p->groups[g].key, x->dir, strlen(x->dir)) != 0 ||
		    p->groups[g].key[strlen(x->dir)] != '\n')
			continue;
		rest = p->groups[g].key + strlen(x->dir) + 1;
		for (i = 0; i < count; i++)
			if (strcmp(names[i], rest) == 0)
				break;
		if (i == count) {
			char *copy = sf_strdup(rest);

			VEC_PUSH(names, count, capacity, copy, ok);
			if (!ok)
				free(copy);
		}
	}
	*names_out = names;
	*count_out = count;
	return SF_OK;
}

static long find_group(const packer *p, const char *key)
{
	size_t g;

	for (g = 0; key && g < p->group_count; g++)
		if (strcmp(p->groups[g].key, key) == 0)
			return (long)g;
	return -1;
}

/*
 * One execution's views: manager_meta.json, step_N/ (each its own index),
 * by-name/. Root entries are appended to root_entries under prefix.
 */
static sf_err build_execution(packer *p, const path_map *map, execution *x, const char *prefix,
			      json_t *root_entries, json_t *summary, sf_error *err)
{
	char **names = NULL, *manager_rel = NULL, *raw = NULL;
	size_t name_count = 0, raw_len = 0, i;
	src_entry *manager;
	json_t *steps = json_array(), *step_summaries = json_array();
	sf_err rc = SF_OK;
	FILE *meta = NULL;
	char *meta_text = NULL;
	size_t meta_len = 0;
	seg_vec meta_segs = { NULL, 0, 0, 0, 0 };
	int64_t manager_sec;
	uint32_t manager_nsec;

	manager_rel = rel_join(x->dir, "batch_manager.json");
	if (!manager_rel || !steps || !step_summaries) {
		rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		goto out;
	}
	manager = path_map_find(p, map, manager_rel);
	manager_sec = manager ? manager->mtime_sec : 0;
	manager_nsec = manager ? manager->mtime_nsec : 0;
	rc = step_names(p, map, x, &names, &name_count, err);
	if (rc != SF_OK)
		goto out;
	/* the manager's own metadata, verbatim, where the file holds no rows */
	if (x->layout == LAYOUT_SPLIT) {
		free(manager_rel);
		manager_rel = rel_join(x->dir, "manager_meta.json");
		manager = manager_rel ? path_map_find(p, map, manager_rel) : NULL;
		manager_sec = manager ? manager->mtime_sec : 0;
		manager_nsec = manager ? manager->mtime_nsec : 0;
	}
	if (x->layout == LAYOUT_CURRENT || x->layout == LAYOUT_PER_BATCH || x->layout == LAYOUT_SPLIT) {
		raw = manager_rel ? read_json_text(p, manager_rel, 64u << 20, &raw_len, err) : NULL;
		if (!raw) {
			rc = err ? err->code : SF_ERR_FORMAT;
			goto out;
		}
	}
	for (i = 0; i < name_count; i++) {
		char step_dir_name[32], *step_rel = NULL, *sig = NULL, *step_view, *safe, *link_path, *key = NULL;
		src_entry *step_file = NULL;
		step_group *group = NULL;
		const seg_vec *step_json = NULL;
		json_t *info;
		long index_id = -1, g;
		int64_t mtime_sec = manager_sec, step_sec = manager_sec;
		uint32_t mtime_nsec = manager_nsec, step_nsec = manager_nsec;
		char *steps_dir = rel_join(x->dir, "batch_manager_steps");

		snprintf(step_dir_name, sizeof(step_dir_name), "step_%zu", i);
		if (steps_dir && !strchr(names[i], '/') && strcmp(names[i], "..") != 0 && strcmp(names[i], ".") != 0) {
			char *tmp = sf_path_join(steps_dir, names[i]);

			if (tmp && x->layout == LAYOUT_PER_STEP) {
				step_rel = malloc(strlen(tmp) + 6);
				if (step_rel)
					sprintf(step_rel, "%s.json", tmp);
			} else if (tmp) {
				step_rel = sf_path_join(tmp, "batch_manager_step.json");
			}
			free(tmp);
		}
		free(steps_dir);
		step_file = step_rel ? path_map_find(p, map, step_rel) : NULL;
		if (step_file && step_file->type != SF_NODE_FILE)
			step_file = NULL;
		if (step_file && (x->layout == LAYOUT_CURRENT || x->layout == LAYOUT_PER_BATCH))
			sig = top_level_string(p, step_rel, "step_signature");
		free(step_rel);
		if (x->layout == LAYOUT_CURRENT) {
			if (sig) {
				key = current_group_key(x, names[i], sig);
			} else {
				/* no signature: the one steps_data folder named after the step */
				char *prefix_key = current_group_key(x, names[i], "");
				size_t gi, found = 0;

				for (gi = 0; prefix_key && gi < p->group_count; gi++) {
					if (strncmp(p->groups[gi].key, prefix_key, strlen(prefix_key)) == 0 &&
					    !strchr(p->groups[gi].key + strlen(prefix_key), '/')) {
						found++;
						free(key);
						key = sf_strdup(p->groups[gi].key);
					}
				}
				if (found == 1 && key)
					sig = sf_strdup(p->groups[find_group(p, key)].key + strlen(prefix_key));
				else {
					free(key);
					key = NULL;
				}
				free(prefix_key);
			}
		} else if (x->layout == LAYOUT_SPLIT) {
			key = split_group_key(x, (unsigned long)i);
		} else {
			key = named_group_key(x, names[i]);
		}
		g = find_group(p, key);
		free(key);
		group = g >= 0 ? &p->groups[g] : NULL;
		if (group && group->batch_count) {
			mtime_sec = group->mtime_sec;
			mtime_nsec = group->mtime_nsec;
		}
		if (step_file) {
			step_json = &step_file->segs;
			step_sec = step_file->mtime_sec;
			step_nsec = step_file->mtime_nsec;
		} else if (group && group->has_step_json) {
			step_json = &group->step_json;
			step_sec = group->step_json_mtime_sec;
			step_nsec = group->step_json_mtime_nsec;
		}
		rc = build_step_view(p, group, step_json, step_sec, step_nsec, mtime_sec, mtime_nsec,
				     &index_id, err);
		if (rc != SF_OK) {
			free(sig);
			goto out;
		}
		step_view = view_path(prefix, step_dir_name);
		json_array_append_new(root_entries, dir_json(step_view, 0555, mtime_sec, mtime_nsec, index_id));
		safe = safe_name(names[i]);
		link_path = view_path(prefix, "by-name");
		if (link_path && i == 0)
			json_array_append_new(root_entries, dir_json(link_path, 0555, manager_sec, manager_nsec, -1));
		if (safe && link_path) {
			char *full_link = sf_path_join(link_path, safe);
			char *link_target = sf_path_join("..", step_dir_name);

			if (full_link && link_target)
				json_array_append_new(root_entries,
						      symlink_json(full_link, link_target, mtime_sec, mtime_nsec));
			free(full_link);
			free(link_target);
		}
		free(link_path);
		free(safe);
		info = json_pack("{s:I,s:s,s:s?,s:s,s:I,s:I,s:{s:I,s:I,s:I}}", "index", (json_int_t)i, "name",
				 names[i], "signature", sig, "path", step_view,
				 "batches", (json_int_t)(group ? group->batch_count : 0),
				 "rows", (json_int_t)(group ? group->rows : 0),
				 "bytes", "batch_files", (json_int_t)(group ? group->batch_bytes : 0),
				 "rows_jsonl", (json_int_t)(group ? group->rows_segs.total : 0),
				 "stored", (json_int_t)(group ? group->stored_bytes : 0));
		if (!info) {
			/* a name that is not UTF-8: keep it as hex */
			char *hex = sf_hex_encode(names[i], strlen(names[i]));

			info = json_pack("{s:I,s:s,s:s?,s:s,s:I,s:I}", "index", (json_int_t)i, "name_hex",
					 hex ? hex : "", "signature", sig, "path", step_view,
					 "batches", (json_int_t)(group ? group->batch_count : 0),
					 "rows", (json_int_t)(group ? group->rows : 0));
			free(hex);
		}
		json_array_append(steps, info);
		json_array_append_new(step_summaries, info);
		p->steps_total++;
		free(step_view);
		free(sig);
	}
	{
		char by_name[SF_MAX_PATH_BYTES];
		char *steps_text = json_dumps(steps, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		char *qname = json_quote(x->pipeline_name), *qsig = json_quote(x->pipeline_sig);
		char *qexec = json_quote(x->exec_sig), *qsource = NULL, *qmanager = NULL;
		char *source_path = view_path("source", x->dir);
		char *manager_path = view_path("source", manager_rel);

		qsource = source_path ? json_quote(source_path) : NULL;
		qmanager = manager_path ? json_quote(manager_path) : NULL;
		meta = open_memstream(&meta_text, &meta_len);
		if (!meta || !steps_text || !qname || !qsig || !qexec || !qsource || !qmanager) {
			rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		} else {
			fprintf(meta, "{\n  \"stepfs\": {\"view\": \"manager_meta\", \"version\": 1},\n"
				      "  \"layout\": \"%s\",\n"
				      "  \"pipeline\": {\"name\": %s, \"signature\": %s},\n"
				      "  \"execution\": %s,\n  \"source\": %s,\n  \"batch_manager_file\": %s,\n"
				      "  \"batch_manager\": ",
				layout_names[x->layout], qname, qsig, qexec, qsource, qmanager);
			if (raw)
				fwrite(raw, 1, raw_len, meta);
			else
				fputs("null", meta); /* that file holds rows: see step_N/ */
			fprintf(meta, ",\n  \"steps\": %s\n}\n", steps_text);
		}
		if (meta)
			fclose(meta);
		free(steps_text);
		free(qname);
		free(qsig);
		free(qexec);
		free(qsource);
		free(qmanager);
		free(source_path);
		free(manager_path);
		if (rc != SF_OK)
			goto out;
		rc = store_generated(p, meta_text, meta_len, &meta_segs, err);
		if (rc != SF_OK)
			goto out;
		snprintf(by_name, sizeof(by_name), "%s%smanager_meta.json", prefix, *prefix ? "/" : "");
		json_array_append_new(root_entries, file_json(by_name, 0444, manager_sec, manager_nsec, &meta_segs, 1,
							      sf_xxh64(meta_text, meta_len, 0)));
	}
	json_array_append_new(summary, json_pack("{s:s,s:s,s:s,s:s,s:s,s:O}", "path", prefix, "layout",
						 layout_names[x->layout], "pipeline", x->pipeline_name,
						 "signature", x->pipeline_sig, "execution", x->exec_sig,
						 "steps", step_summaries));
out:
	free(meta_segs.items);
	free(meta_text);
	free(raw);
	json_decref(steps);
	json_decref(step_summaries);
	sf_pipeline_yaml_names_free(names, name_count);
	free(manager_rel);
	return rc;
}

/* Root manager_meta.json of a plain tree or of several executions. */
static sf_err build_root_meta(packer *p, json_t *executions, json_t *root_entries,
			       const struct stat *src_st, sf_error *err)
{
	json_t *doc = json_pack("{s:{s:s,s:i},s:s,s:s,s:O}", "stepfs", "view", "manager_meta", "version", 1,
				"layout", p->layout, "source", "source", "executions", executions);
	char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	seg_vec segs = { NULL, 0, 0, 0, 0 };
	sf_err rc;

	json_decref(doc);
	if (!text)
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	{
		size_t len = strlen(text);
		char *with_newline = malloc(len + 2);

		if (!with_newline) {
			free(text);
			return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		}
		memcpy(with_newline, text, len);
		with_newline[len] = '\n';
		with_newline[len + 1] = '\0';
		free(text);
		text = with_newline;
	}
	rc = store_generated(p, text, strlen(text), &segs, err);
	if (rc == SF_OK)
		json_array_append_new(root_entries, file_json("manager_meta.json", 0444, src_st->st_mtim.tv_sec,
							      (uint32_t)src_st->st_mtim.tv_nsec, &segs, 1,
							      sf_xxh64(text, strlen(text), 0)));
	free(segs.items);
	free(text);
	return rc;
}

/* ---- the store directory ------------------------------------------------- */

static int remove_tree(const char *path)
{
	DIR *dir = opendir(path);
	struct dirent *d;
	int rc = 0;

	if (!dir)
		return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
	while ((d = readdir(dir)) != NULL) {
		char *child;
		struct stat st;

		if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
			continue;
		child = sf_path_join(path, d->d_name);
		if (!child) {
			rc = -1;
			continue;
		}
		if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode))
			rc |= remove_tree(child);
		else if (unlink(child) != 0)
			rc = -1;
		free(child);
	}
	closedir(dir);
	return rmdir(path) == 0 ? rc : -1;
}

/* Remove ".NAME.stepstore-tmp-PID" folders left by runs that were killed. */
static void remove_stale_temporaries(const char *parent, const char *name)
{
	DIR *dir = opendir(parent);
	struct dirent *d;
	char prefix[PATH_MAX];

	if (!dir)
		return;
	snprintf(prefix, sizeof(prefix), ".%s.stepstore-tmp-", name);
	while ((d = readdir(dir)) != NULL) {
		char *end, *full;
		long pid;

		if (strncmp(d->d_name, prefix, strlen(prefix)) != 0)
			continue;
		pid = strtol(d->d_name + strlen(prefix), &end, 10);
		if (*end != '\0' || pid <= 0)
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno == EPERM)
			continue; /* that run is still going */
		full = sf_path_join(parent, d->d_name);
		if (full)
			remove_tree(full);
		free(full);
	}
	closedir(dir);
}

static char *iso_time_now(char buf[32])
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

static sf_err write_store_json(packer *p, long root_index, const struct stat *src_st, sf_error *err)
{
	json_t *shards = json_array(), *doc;
	char created[32], *text = NULL, *full = NULL;
	size_t i;
	int fd = -1;
	sf_err rc = SF_OK;

	for (i = 0; shards && i < p->shard_count; i++) {
		json_t *item = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I}", "file", p->shards[i].file,
					 "kind", p->shards[i].kind, "label", p->shards[i].label,
					 "content_bytes", (json_int_t)p->shards[i].content_bytes,
					 "compressed_bytes", (json_int_t)p->shards[i].compressed_bytes,
					 "frames", (json_int_t)p->shards[i].frames);

		if (item && p->shards[i].dictionary)
			json_object_set(item, "dictionary", p->shards[i].dictionary);
		json_array_append_new(shards, item);
	}
	doc = json_pack("{s:s,s:[ii],s:s,s:s,s:{s:s,s:i,s:I,s:b,s:s,s:s},s:s,s:{s:I,s:I,s:I,s:I,s:o},s:o,s:O,s:I,s:O}",
			"format", SF_FORMAT_NAME, "format_version", SF_FORMAT_MAJOR,
			p->dict_zst_used ? SF_FORMAT_MINOR_DICT_ZST
			: p->list_lines_used ? SF_FORMAT_MINOR_LIST_LINES : SF_FORMAT_MINOR_BASE,
			"writer", "stepstore " SF_VERSION, "created", iso_time_now(created),
			"compression", "codec", "zstd", "level", p->options->level,
			"frame_bytes", (json_int_t)p->options->frame_bytes,
			"long_distance", p->options->long_distance,
			"checksums", "zstd content checksum and seek-table XXH64 per frame",
			"dictionary", p->options->dictionary == SF_SEEK_DICT_ALWAYS ? "always"
				      : p->options->dictionary == SF_SEEK_DICT_AUTO ? "auto" : "never",
			"layout", p->layout,
			"source", "files", (json_int_t)p->summary->files, "dirs", (json_int_t)p->summary->dirs,
			"symlinks", (json_int_t)p->summary->symlinks, "bytes", (json_int_t)p->summary->source_bytes,
			"mtime", json_pack("[II]", (json_int_t)src_st->st_mtim.tv_sec, (json_int_t)src_st->st_mtim.tv_nsec),
			"shards", shards, "indexes", p->indexes, "root_index", (json_int_t)root_index,
			"executions", p->execution_summaries);
	if (!doc || !(text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER)) ||
	    !(full = sf_path_join(p->tmp, SF_STORE_ROOT_FILE))) {
		rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		goto out;
	}
	fd = open(full, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || sf_write_all(fd, text, strlen(text)) != 0 || sf_write_all(fd, "\n", 1) != 0 ||
	    fsync(fd) != 0)
		rc = sf_error_io(err, errno, "'%s': cannot write", full);
out:
	if (fd >= 0)
		close(fd);
	free(full);
	free(text);
	json_decref(doc);
	return rc;
}

void sf_pack_options_init(sf_pack_options *options)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	memset(options, 0, sizeof(*options));
	options->level = SF_DEFAULT_LEVEL;
	options->frame_bytes = SF_DEFAULT_FRAME_BYTES;
	options->threads = cpus > 0 ? (int)cpus : 1;
	options->shard_bytes = SF_DEFAULT_SHARD_BYTES;
	options->layout = "auto";
	options->max_depth = SF_JSCAN_DEFAULT_DEPTH;
	options->dictionary = SF_SEEK_DICT_AUTO;
}

static void packer_release(packer *p)
{
	size_t i;

	sf_jscan_free(p->scanner);
	p->scanner = NULL;
	if (p->shard_lock_ready)
		pthread_mutex_destroy(&p->shard_lock);
	for (i = 0; i < p->entry_count; i++) {
		free(p->entries[i].batch_name);
		free(p->entries[i].path);
		free(p->entries[i].target);
		free(p->entries[i].segs.items);
	}
	free(p->entries);
	for (i = 0; i < p->group_count; i++) {
		step_group *g = &p->groups[i];
		size_t b;

		for (b = 0; b < g->batch_count; b++)
			batch_rec_release(&g->batches[b]);
		free(g->batches);
		free(g->key);
		free(g->label);
		free(g->step_json.items);
		free(g->rows_segs.items);
		free(g->shard_ids);
		free(g->extras);
	}
	free(p->groups);
	for (i = 0; i < p->shard_count; i++) {
		sf_seek_writer_free(p->shards[i].writer);
		if (p->shards[i].fd >= 0)
			close(p->shards[i].fd);
		free(p->shards[i].file);
		free(p->shards[i].label);
		json_decref(p->shards[i].dictionary);
	}
	free(p->shards);
	if (p->indexes)
		json_decref(p->indexes);
	if (p->execution_summaries)
		json_decref(p->execution_summaries);
	free(p->buffer);
	free(p->tmp);
	free(p->external_root);
}

static sf_err make_dirs(packer *p, sf_error *err)
{
	char *shards = sf_path_join(p->tmp, SF_STORE_SHARD_DIR);
	char *indexes = sf_path_join(p->tmp, SF_STORE_INDEX_DIR);
	sf_err rc = SF_OK;

	if (!shards || !indexes)
		rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	else if (mkdir(shards, 0755) != 0 || mkdir(indexes, 0755) != 0)
		rc = sf_error_io(err, errno, "'%s': cannot create folders", p->tmp);
	free(shards);
	free(indexes);
	return rc;
}

static sf_err sync_and_commit(packer *p, const char *store, const char *parent, sf_error *err)
{
	char *shards = sf_path_join(p->tmp, SF_STORE_SHARD_DIR);
	char *indexes = sf_path_join(p->tmp, SF_STORE_INDEX_DIR);
	struct stat st;
	sf_err rc = SF_OK;

	if (!shards || !indexes)
		rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	else if (sf_fsync_dir(shards) != 0 || sf_fsync_dir(indexes) != 0 || sf_fsync_dir(p->tmp) != 0)
		rc = sf_error_io(err, errno, "'%s': fsync failed", p->tmp);
	else if (lstat(store, &st) == 0)
		rc = sf_error_set(err, SF_ERR_EXISTS, "'%s': already exists (appeared while packing)", store);
	else if (rename(p->tmp, store) != 0)
		rc = sf_error_io(err, errno, "'%s': cannot rename the finished store into place", store);
	else if (sf_fsync_dir(parent) != 0)
		rc = sf_error_io(err, errno, "'%s': fsync failed", parent);
	free(shards);
	free(indexes);
	return rc;
}

sf_err sf_pack(const char *src, const char *store, const sf_pack_options *options,
	       sf_pack_summary *summary_out, sf_error *err)
{
	packer p;
	sf_pack_summary summary;
	struct stat src_st, st;
	char *parent = NULL, *store_copy = NULL, tmp_name[PATH_MAX];
	json_t *root_entries = NULL;
	execution *executions = NULL;
	size_t execution_count = 0, i;
	path_map map = { NULL, 0 };
	long source_index = -1, root_index = -1;
	int tmp_made = 0;
	sf_err rc = SF_OK;

	memset(&p, 0, sizeof(p));
	memset(&summary, 0, sizeof(summary));
	p.options = options;
	p.src = src;
	p.files_shard = p.raw_shard = -1;
	p.summary = &summary;
	clock_gettime(CLOCK_MONOTONIC, &p.started);
	if (options->level < ZSTD_minCLevel() || options->level > ZSTD_maxCLevel() || options->level == 0)
		return sf_error_set(err, SF_ERR_INVALID, "compression level %d is outside %d..%d (0 excluded)",
				    options->level, ZSTD_minCLevel(), ZSTD_maxCLevel());
	if (options->frame_bytes < 4096 || options->frame_bytes > SF_SEEK_MAX_FRAME_BYTES)
		return sf_error_set(err, SF_ERR_INVALID, "frame size %zu is outside 4 KiB..16 MiB",
				    options->frame_bytes);
	if (options->shard_bytes < options->frame_bytes)
		return sf_error_set(err, SF_ERR_INVALID, "shard size %" PRIu64 " is below the frame size %zu",
				    options->shard_bytes, options->frame_bytes);
	if (stat(src, &src_st) != 0)
		return sf_error_io(err, errno, "'%s': cannot read the source", src);
	if (!S_ISDIR(src_st.st_mode))
		return sf_error_set(err, SF_ERR_INVALID, "'%s': the source must be a folder", src);
	if (lstat(store, &st) == 0)
		return sf_error_set(err, SF_ERR_EXISTS, "'%s': already exists; stepstore never overwrites a store",
				    store);
	store_copy = sf_strdup(store);
	if (!store_copy)
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	while (strlen(store_copy) > 1 && store_copy[strlen(store_copy) - 1] == '/')
		store_copy[strlen(store_copy) - 1] = '\0';
	parent = parent_dir(store_copy);
	if (!parent) {
		free(store_copy);
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	}
	if (!*parent) {
		free(parent);
		parent = sf_strdup(store_copy[0] == '/' ? "/" : ".");
	}
	{
		/* the store must not be inside the source: we would pack ourselves */
		char real_src[PATH_MAX], real_parent[PATH_MAX];

		if (realpath(src, real_src) && realpath(parent, real_parent)) {
			size_t n = strlen(real_src);

			if (strncmp(real_parent, real_src, n) == 0 &&
			    (real_parent[n] == '/' || real_parent[n] == '\0')) {
				rc = sf_error_set(err, SF_ERR_INVALID, "'%s': the store cannot be inside the source '%s'",
						  store, src);
				goto out;
			}
		}
	}
	remove_stale_temporaries(parent, base_name(store_copy));
	snprintf(tmp_name, sizeof(tmp_name), "%s/.%s.stepstore-tmp-%ld", parent, base_name(store_copy),
		 (long)getpid());
	p.tmp = sf_strdup(tmp_name);
	p.buffer = malloc(COPY_BUFFER_BYTES);
	sf_mutex_init(&p.shard_lock);
	p.shard_lock_ready = 1;
	p.indexes = json_array();
	p.execution_summaries = json_array();
	root_entries = json_array();
	if (!p.tmp || !p.buffer || !p.indexes || !p.execution_summaries || !root_entries) {
		rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (mkdir(p.tmp, 0755) != 0) {
		rc = sf_error_io(err, errno, "'%s': cannot create the temporary store", p.tmp);
		goto out;
	}
	tmp_made = 1;
	rc = make_dirs(&p, err);
	if (rc == SF_OK)
		rc = walk(&p, "", 0, err);
	if (rc != SF_OK)
		goto out;
	for (i = 0; i < p.entry_count; i++) {
		if (p.entries[i].base)
			continue;
		if (p.entries[i].type == SF_NODE_DIR)
			summary.dirs++;
		else if (p.entries[i].type == SF_NODE_FILE)
			summary.files++, summary.source_bytes += p.entries[i].size;
		else
			summary.symlinks++;
	}
	rc = path_map_build(&p, &map, err);
	if (rc == SF_OK && strcmp(options->layout ? options->layout : "auto", "plain") != 0) {
		size_t before = p.entry_count;

		rc = add_external_steps_data(&p, &map, err);
		if (rc == SF_OK && p.entry_count != before) {
			free(map.slots);
			rc = path_map_build(&p, &map, err);
		}
	}
	if (rc == SF_OK)
		rc = find_executions(&p, &map, &executions, &execution_count, err);
	if (rc != SF_OK)
		goto out;
	{
		const char *forced = options->layout ? options->layout : "auto";
		int layout_id = -1;

		for (i = 0; i < sizeof(layout_names) / sizeof(*layout_names); i++)
			if (strcmp(forced, layout_names[i]) == 0)
				layout_id = (int)i;
		if (strcmp(forced, "plain") == 0) {
			for (i = 0; i < execution_count; i++)
				execution_release(&executions[i]);
			execution_count = 0;
		} else if (layout_id >= 0) {
			if (execution_count == 0) {
				rc = sf_error_set(err, SF_ERR_FORMAT,
						  "'%s': no batch_manager.json found, so not a %s cache", src, forced);
				goto out;
			}
			for (i = 0; i < execution_count; i++)
				executions[i].layout = layout_id;
		} else if (strcmp(forced, "auto") != 0) {
			rc = sf_error_set(err, SF_ERR_INVALID,
					  "unknown layout '%s' (expected auto, current, per-batch, per-step, monolithic, split or plain)",
					  forced);
			goto out;
		}
		p.layout = execution_count ? layout_names[executions[0].layout] : "plain";
		for (i = 1; i < execution_count; i++)
			if (executions[i].layout != executions[0].layout)
				p.layout = "mixed";
	}
	rc = classify(&p, &map, executions, execution_count, err);
	if (rc == SF_OK) {
		uint64_t plain_bytes = expected_sizes(&p);

		rc = shard_open(&p, "files", "files", options->level, plain_bytes, &p.files_shard, err);
	}
	if (rc == SF_OK)
		rc = pack_plain_files(&p, err);
	if (rc == SF_OK)
		rc = pack_batches(&p, executions, err);
	for (i = 0; rc == SF_OK && i < p.group_count; i++) {
		summary.batches += p.groups[i].batch_count;
		summary.rows += p.groups[i].rows;
	}
	if (rc == SF_OK)
		rc = write_source_index(&p, &source_index, err);
	if (rc != SF_OK)
		goto out;
	json_array_append_new(root_entries, dir_json("source", src_st.st_mode & 07777, src_st.st_mtim.tv_sec,
						     (uint32_t)src_st.st_mtim.tv_nsec, source_index));
	for (i = 0; rc == SF_OK && i < execution_count; i++) {
		char prefix[SF_MAX_PATH_BYTES];

		if (execution_count == 1)
			prefix[0] = '\0';
		else
			snprintf(prefix, sizeof(prefix), "%s/%s", executions[i].pipeline_name,
				 executions[i].exec_sig);
		rc = build_execution(&p, &map, &executions[i], prefix, root_entries, p.execution_summaries, err);
	}
	if (rc == SF_OK && execution_count != 1)
		rc = build_root_meta(&p, p.execution_summaries, root_entries, &src_st, err);
	if (rc == SF_OK)
		rc = shard_close(&p, p.files_shard, err);
	if (rc == SF_OK && p.raw_shard >= 0)
		rc = shard_close(&p, p.raw_shard, err);
	if (rc == SF_OK) {
		rc = write_index(&p, root_entries, 0, &root_index, err); /* consumes root_entries */
		root_entries = NULL;
	}
	if (rc == SF_OK)
		rc = index_writer_finish(&p, 0, err);
	if (rc == SF_OK)
		rc = write_store_json(&p, root_index, &src_st, err);
	if (rc == SF_OK)
		rc = check_cancel(&p, err);
	if (rc == SF_OK)
		rc = sync_and_commit(&p, store_copy, parent, err);
	if (rc == SF_OK) {
		tmp_made = 0;
		for (i = 0; i < p.shard_count; i++)
			summary.store_bytes += p.shards[i].compressed_bytes + p.shards[i].dict_bytes;
		summary.layout = p.layout;
		summary.steps = p.steps_total;
		draw_progress(&p, 1);
		if (summary_out)
			*summary_out = summary;
	}
out:
	if (p.options->progress && rc != SF_OK)
		fputc('\n', stderr);
	/* the index writer creates files in the temporary store: a failed
	   pack stops it (dropping what it has not written) before removing
	   the store; after a success it has stopped already */
	index_writer_finish(&p, 1, NULL);
	if (tmp_made)
		remove_tree(p.tmp);
	for (i = 0; i < execution_count; i++)
		execution_release(&executions[i]);
	free(executions);
	free(map.slots);
	if (root_entries)
		json_decref(root_entries);
	packer_release(&p);
	free(parent);
	free(store_copy);
	return rc;
}
