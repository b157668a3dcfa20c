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
#include "sf_jscan.h"
#include "sf_pipeline_yaml.h"
#include "sf_seekable.h"
#include "sf_store.h"
#include "sf_util.h"
#include "sf_xxhash.h"

#define COPY_BUFFER_BYTES (1u << 20)
#define MAX_SOURCE_DEPTH 256

/* ---- growable vectors ---------------------------------------------------- */

typedef struct seg_vec {
	sf_segment *items;
	size_t count, capacity;
	uint64_t total;
} seg_vec;

/* Append a segment, merging it into the previous one when contiguous. */
static int seg_push(seg_vec *vec, uint32_t shard, uint64_t offset, uint64_t length, uint8_t subst)
{
	sf_segment *last = vec->count ? &vec->items[vec->count - 1] : NULL;

	if (length == 0)
		return 1;
	vec->total += length;
	if (last && last->shard == shard && last->subst == subst &&
	    last->shard_offset + last->length == offset) {
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
	vec->items[vec->count].file_offset = 0;
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

enum { ROLE_PLAIN, ROLE_BATCH };

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
	long group;            /* ROLE_BATCH: its step group */
	uint64_t seq;          /* ROLE_BATCH: batch number */
	uint64_t rows;
} src_entry;

/* A steps_data/<step>_<sig> folder: one step's batches, one shard chain. */
typedef struct step_group {
	char *dir;             /* relative path */
	size_t *files;         /* indexes into the entry list, numeric order */
	size_t file_count, file_capacity;
	seg_vec rows_segs;     /* rows.jsonl */
	sf_xxh64_state rows_hash;
	uint64_t rows, batch_bytes, stored_bytes;
	uint32_t first_shard, last_shard;
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
} packer;

static int cancelled(const packer *p)
{
	return p->options->cancel && *p->options->cancel;
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
	struct timespec now;
	double elapsed, rate, left;
	int width = 30, filled;
	char bar[64];

	if (!p->options->progress)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!final && seconds_between(&p->last_draw, &now) < 0.25)
		return;
	p->last_draw = now;
	elapsed = seconds_between(&p->started, &now);
	rate = elapsed > 0 ? (double)p->done_bytes / elapsed : 0;
	left = rate > 0 ? (double)(p->total_bytes - p->done_bytes) / rate : 0;
	filled = p->total_bytes ? (int)((double)width * (double)p->done_bytes / (double)p->total_bytes) : width;
	if (filled > width)
		filled = width;
	memset(bar, '#', (size_t)filled);
	memset(bar + filled, '.', (size_t)(width - filled));
	bar[width] = '\0';
	fprintf(stderr, "\rstepstore: [%s] %6.1f / %.1f MiB  %6.1f MiB/s  %4.0fs left ", bar,
		(double)p->done_bytes / 1048576.0, (double)p->total_bytes / 1048576.0,
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

static sf_err walk(packer *p, const char *rel, int depth, sf_error *err)
{
	char *full = *rel ? sf_path_join(p->src, rel) : sf_strdup(p->src);
	DIR *dir = NULL;
	struct dirent *d;
	char **names = NULL;
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
	qsort(names, count, sizeof(*names), compare_names);
	for (i = 0; i < count && rc == SF_OK; i++) {
		char *child_rel = *rel ? sf_path_join(rel, names[i]) : sf_strdup(names[i]);
		char *child_full = child_rel ? sf_path_join(p->src, child_rel) : NULL;
		struct stat st;

		if (!child_full) {
			free(child_rel);
			rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
			break;
		}
		if (strlen(child_rel) > SF_MAX_PATH_BYTES) {
			rc = sf_error_set(err, SF_ERR_LIMIT, "'%s': path longer than %d bytes", child_full,
					  SF_MAX_PATH_BYTES);
		} else if (lstat(child_full, &st) != 0) {
			rc = sf_error_io(err, errno, "'%s': cannot stat", child_full);
		} else if (S_ISDIR(st.st_mode)) {
			rc = add_entry(p, child_rel, &st, err);
			if (rc == SF_OK)
				rc = walk(p, child_rel, depth + 1, err);
		} else if (S_ISREG(st.st_mode)) {
			if (access(child_full, R_OK) != 0 && errno == EACCES)
				rc = sf_error_io(err, EACCES, "'%s': cannot read", child_full);
			else {
				rc = add_entry(p, child_rel, &st, err);
				p->total_bytes += (uint64_t)st.st_size;
			}
		} else if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX + 1];
			ssize_t n = readlink(child_full, target, PATH_MAX);

			if (n < 0) {
				rc = sf_error_io(err, errno, "'%s': cannot read symlink", child_full);
			} else {
				target[n] = '\0';
				if ((size_t)n != strlen(target)) {
					rc = sf_error_set(err, SF_ERR_UNSUPPORTED, "'%s': symlink target holds a NUL byte",
							  child_full);
				} else {
					rc = add_entry(p, child_rel, &st, err);
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
	for (i = 0; i < count; i++)
		free(names[i]);
	free(names);
	if (dir)
		closedir(dir);
	free(full);
	return rc;
}

/* ---- output shards ------------------------------------------------------- */

static sf_err shard_open(packer *p, const char *kind, const char *label, int level,
			 long *id_out, sf_error *err)
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
	wo.level = level;
	wo.frame_bytes = p->options->frame_bytes;
	wo.threads = p->options->threads;
	wo.long_distance = p->options->long_distance;
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

static sf_err shard_close(packer *p, long id, sf_error *err)
{
	out_shard *shard = &p->shards[id];
	sf_err rc;

	if (!shard->writer)
		return SF_OK;
	shard->content_bytes = sf_seek_writer_offset(shard->writer);
	rc = sf_seek_writer_finish(shard->writer, &shard->compressed_bytes, &shard->frames, err);
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
static sf_err step_shard_open(packer *p, const char *label, long *id, sf_error *err)
{
	sf_err rc = shard_open(p, "step", label, p->options->level, id, err);

	if (rc == SF_OK)
		rc = shard_write(p, *id, "\n", 1, err);
	return rc;
}

/* ---- copying source bytes ------------------------------------------------ */

/* Sequential reader of one source file that hashes every byte it passes. */
typedef struct src_reader {
	int fd;
	const char *path;
	uint64_t pos;
	sf_xxh64_state hash;
} src_reader;

/* Copy the next (end - pos) bytes of the file into shard (or skip them
   when shard < 0), hashing them; rows_hash, when set, also sees them. */
static sf_err copy_range(packer *p, src_reader *reader, uint64_t end, long shard,
			 sf_xxh64_state *rows_hash, sf_error *err)
{
	while (reader->pos < end) {
		size_t want = end - reader->pos > COPY_BUFFER_BYTES ? COPY_BUFFER_BYTES
								     : (size_t)(end - reader->pos);
		ssize_t n = read(reader->fd, p->buffer, want);
		sf_err rc;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return sf_error_io(err, errno, "'%s': read failed at byte %" PRIu64, reader->path,
					   reader->pos);
		if (n == 0)
			return sf_error_set(err, SF_ERR_IO, "'%s': file shrank while being packed (at byte %" PRIu64 ")",
					    reader->path, reader->pos);
		sf_xxh64_update(&reader->hash, p->buffer, (size_t)n);
		if (rows_hash)
			sf_xxh64_update(rows_hash, p->buffer, (size_t)n);
		if (shard >= 0) {
			rc = shard_write(p, shard, p->buffer, (size_t)n, err);
			if (rc != SF_OK)
				return rc;
		}
		reader->pos += (uint64_t)n;
		p->done_bytes += (uint64_t)n;
		draw_progress(p, 0);
		if (cancelled(p))
			return check_cancel(p, err);
	}
	return SF_OK;
}

/* Hash an embedded (multi-line) row as rows.jsonl shows it: newlines as spaces. */
static sf_err hash_row_as_line(packer *p, src_reader *reader, uint64_t start, uint64_t end,
			       sf_xxh64_state *rows_hash, sf_error *err)
{
	uint64_t pos = start;

	while (pos < end) {
		size_t want = end - pos > COPY_BUFFER_BYTES ? COPY_BUFFER_BYTES : (size_t)(end - pos);
		ssize_t n = sf_pread_full(reader->fd, p->buffer, want, pos);
		ssize_t i;

		if (n <= 0)
			return sf_error_io(err, n < 0 ? errno : EIO, "'%s': read failed at byte %" PRIu64,
					   reader->path, pos);
		for (i = 0; i < n; i++)
			if (p->buffer[i] == '\n')
				p->buffer[i] = ' ';
		sf_xxh64_update(rows_hash, p->buffer, (size_t)n);
		pos += (uint64_t)n;
	}
	return SF_OK;
}

static sf_err open_source(packer *p, src_entry *entry, src_reader *reader, char **full,
			  sf_error *err)
{
	*full = sf_path_join(p->src, entry->path);
	if (!*full)
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	reader->fd = open(*full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (reader->fd < 0)
		return sf_error_io(err, errno, "'%s': cannot open", *full);
	reader->path = *full;
	reader->pos = 0;
	sf_xxh64_init(&reader->hash, 0);
	return SF_OK;
}

static sf_err finish_source(packer *p, src_entry *entry, src_reader *reader, sf_error *err)
{
	char extra;

	if (read(reader->fd, &extra, 1) > 0)
		return sf_error_set(err, SF_ERR_IO, "'%s': file grew while being packed (past byte %" PRIu64 ")",
				    reader->path, reader->pos);
	entry->xxh64 = sf_xxh64_digest(&reader->hash);
	(void)p;
	return SF_OK;
}

/* A plain file: its bytes in one shard, as one segment. */
static sf_err pack_plain_file(packer *p, src_entry *entry, long shard, sf_error *err)
{
	src_reader reader = { -1, NULL, 0, { { 0 }, 0, { 0 }, 0, 0 } };
	char *full = NULL;
	uint64_t start;
	sf_err rc;

	rc = open_source(p, entry, &reader, &full, err);
	if (rc != SF_OK)
		goto out;
	start = shard_offset(p, shard);
	rc = copy_range(p, &reader, entry->size, shard, NULL, err);
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

/* ---- batch files: rows stored once -------------------------------------- */

typedef struct row_emitter {
	packer *p;
	src_entry *entry;
	step_group *group;
	src_reader *reader;
	long shard;
	int in_run;
	uint64_t run_start;      /* shard offset of the run's first row */
	uint64_t last_end;       /* file offset just past the previous row */
} row_emitter;

static sf_err close_run(row_emitter *e, sf_error *err)
{
	uint64_t end;

	if (!e->in_run)
		return SF_OK;
	e->in_run = 0;
	end = shard_offset(e->p, e->shard); /* just past the run's final '\n' */
	if (!seg_push(&e->entry->segs, (uint32_t)e->shard, e->run_start, end - e->run_start - 1,
		      SF_SUBST_NL_COMMA) ||
	    !seg_push(&e->group->rows_segs, (uint32_t)e->shard, e->run_start, end - e->run_start,
		      SF_SUBST_NONE))
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	return SF_OK;
}

/* Copy file bytes up to `end` as literal text of the batch file. */
static sf_err emit_literal(row_emitter *e, uint64_t end, sf_error *err)
{
	uint64_t start = shard_offset(e->p, e->shard);
	sf_err rc;

	if (end <= e->reader->pos)
		return SF_OK;
	rc = copy_range(e->p, e->reader, end, e->shard, NULL, err);
	if (rc == SF_OK && !seg_push(&e->entry->segs, (uint32_t)e->shard, start,
				     shard_offset(e->p, e->shard) - start, SF_SUBST_NONE))
		rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	return rc;
}

static sf_err emit_row(row_emitter *e, uint64_t start, uint64_t end, uint64_t newlines,
		       sf_error *err)
{
	sf_err rc;

	e->entry->rows++;
	e->group->rows++;
	if (newlines == 0) {
		if (e->in_run && start == e->last_end + 1) {
			/* the one byte between is the ',' the run's '\n' will serve */
			rc = copy_range(e->p, e->reader, start, -1, NULL, err);
		} else {
			rc = close_run(e, err);
			if (rc == SF_OK)
				rc = emit_literal(e, start, err);
			e->in_run = 1;
			e->run_start = shard_offset(e->p, e->shard);
		}
		if (rc == SF_OK)
			rc = copy_range(e->p, e->reader, end, e->shard, &e->group->rows_hash, err);
		if (rc == SF_OK)
			rc = shard_write(e->p, e->shard, "\n", 1, err);
		sf_xxh64_update(&e->group->rows_hash, "\n", 1);
		e->last_end = end;
		return rc;
	}
	/* A row spanning lines stays inside the literal text; rows.jsonl
	   serves it with its newlines as spaces, then a newline. */
	rc = close_run(e, err);
	if (rc == SF_OK)
		rc = emit_literal(e, start, err);
	if (rc == SF_OK) {
		uint64_t row_offset = shard_offset(e->p, e->shard);

		rc = hash_row_as_line(e->p, e->reader, start, end, &e->group->rows_hash, err);
		if (rc == SF_OK)
			rc = emit_literal(e, end, err);
		if (rc == SF_OK &&
		    (!seg_push(&e->group->rows_segs, (uint32_t)e->shard, row_offset, end - start,
			       SF_SUBST_NL_SPACE) ||
		     !seg_push(&e->group->rows_segs, (uint32_t)e->shard, 0, 1, SF_SUBST_NONE)))
			rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		sf_xxh64_update(&e->group->rows_hash, "\n", 1);
	}
	e->last_end = end;
	return rc;
}

static sf_err layout_error(const char *path, uint64_t offset, const char *what, sf_error *err)
{
	return sf_error_set(err, SF_ERR_FORMAT, "'%s': byte %" PRIu64 ": %s", path, offset, what);
}

/*
 * A batch file is a JSON object whose "data" member is a list of lists of
 * rows (distilabel's _Batch.data). Everything else is literal text.
 */
static sf_err pack_batch_file(packer *p, src_entry *entry, step_group *group, long shard,
			      sf_error *err)
{
	src_reader reader = { -1, NULL, 0, { { 0 }, 0, { 0 }, 0, 0 } };
	row_emitter e;
	sf_jscan_options so;
	sf_jscan *scan = NULL;
	char *full = NULL;
	int scan_fd = -1, seen_data = 0;
	sf_jtok tok;
	sf_err rc;

	memset(&e, 0, sizeof(e));
	rc = open_source(p, entry, &reader, &full, err);
	if (rc != SF_OK)
		goto out;
	scan_fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (scan_fd < 0) {
		rc = sf_error_io(err, errno, "'%s': cannot open", full);
		goto out;
	}
	memset(&so, 0, sizeof(so));
	so.max_depth = p->options->max_depth;
	so.reject_duplicate_keys = 1;
	so.allow_nan = 1;
	rc = sf_jscan_open_fd(&scan, scan_fd, full, &so, err);
	if (rc != SF_OK)
		goto out;
	e.p = p;
	e.entry = entry;
	e.group = group;
	e.reader = &reader;
	e.shard = shard;
	rc = sf_jscan_next(scan, &tok, err);
	if (rc == SF_OK && tok.type != SF_JTOK_OBJECT_BEGIN)
		rc = layout_error(full, tok.start, "expected a batch object ('{')", err);
	while (rc == SF_OK) {
		rc = sf_jscan_next(scan, &tok, err);
		if (rc != SF_OK || tok.type == SF_JTOK_OBJECT_END)
			break;
		if (tok.type != SF_JTOK_KEY) {
			rc = layout_error(full, tok.start, "expected a key", err);
			break;
		}
		if (!(tok.text && strcmp(tok.text, "data") == 0)) {
			rc = sf_jscan_skip_value(scan, NULL, NULL, NULL, err);
			continue;
		}
		seen_data = 1;
		rc = sf_jscan_next(scan, &tok, err);
		if (rc == SF_OK && tok.type != SF_JTOK_ARRAY_BEGIN)
			rc = layout_error(full, tok.start, "expected \"data\" to be a list of lists of rows", err);
		while (rc == SF_OK && !sf_jscan_at_container_end(scan)) {
			rc = sf_jscan_next(scan, &tok, err);
			if (rc == SF_OK && tok.type != SF_JTOK_ARRAY_BEGIN)
				rc = layout_error(full, tok.start,
						  "expected a list of rows inside \"data\"", err);
			while (rc == SF_OK && !sf_jscan_at_container_end(scan)) {
				uint64_t start = 0, end = 0, newlines = 0;

				rc = sf_jscan_skip_value(scan, &start, &end, &newlines, err);
				if (rc == SF_OK)
					rc = emit_row(&e, start, end, newlines, err);
			}
			if (rc == SF_OK)
				rc = sf_jscan_next(scan, &tok, err); /* inner ']' */
		}
		if (rc == SF_OK)
			rc = sf_jscan_next(scan, &tok, err); /* outer ']' */
		if (rc == SF_OK)
			rc = close_run(&e, err);
	}
	if (rc == SF_OK)
		rc = sf_jscan_next(scan, &tok, err);
	if (rc == SF_OK && tok.type != SF_JTOK_EOF)
		rc = layout_error(full, tok.start, "expected the end of the batch file", err);
	if (rc == SF_OK && !seen_data)
		rc = layout_error(full, entry->size, "expected a \"data\" member holding the batch's rows", err);
	if (rc == SF_OK)
		rc = close_run(&e, err);
	if (rc == SF_OK)
		rc = emit_literal(&e, entry->size, err);
	if (rc == SF_OK && reader.pos != entry->size)
		rc = sf_error_set(err, SF_ERR_IO, "'%s': file changed while being packed", full);
	if (rc == SF_OK)
		rc = finish_source(p, entry, &reader, err);
	if (rc == SF_OK && entry->segs.total != entry->size)
		rc = sf_error_set(err, SF_ERR_IO, "'%s': internal size mismatch (%" PRIu64 " != %" PRIu64 ")",
				  full, entry->segs.total, entry->size);
out:
	sf_jscan_free(scan);
	if (scan_fd >= 0)
		close(scan_fd);
	if (reader.fd >= 0)
		close(reader.fd);
	free(full);
	return rc;
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

static packer *sort_context;

static int compare_batch_files(const void *a, const void *b)
{
	const src_entry *x = &sort_context->entries[*(const size_t *)a];
	const src_entry *y = &sort_context->entries[*(const size_t *)b];

	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return strcmp(x->path, y->path);
}

/* Group batch files of every `steps_data/<step>_<sig>/` folder. */
static sf_err find_groups(packer *p, sf_error *err)
{
	size_t i, g;
	int ok;

	for (i = 0; i < p->entry_count; i++) {
		src_entry *entry = &p->entries[i];
		char *dir, *grand;
		uint64_t seq;

		if (entry->type != SF_NODE_FILE || !batch_number(base_name(entry->path), &seq))
			continue;
		dir = parent_dir(entry->path);
		grand = dir ? parent_dir(dir) : NULL;
		if (!dir || !grand) {
			free(dir);
			free(grand);
			return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		}
		if (strcmp(base_name(grand), "steps_data") != 0 || !*dir) {
			free(dir);
			free(grand);
			continue;
		}
		free(grand);
		for (g = 0; g < p->group_count; g++)
			if (strcmp(p->groups[g].dir, dir) == 0)
				break;
		if (g == p->group_count) {
			step_group group;

			memset(&group, 0, sizeof(group));
			group.dir = dir;
			sf_xxh64_init(&group.rows_hash, 0);
			VEC_PUSH(p->groups, p->group_count, p->group_capacity, group, ok);
			if (!ok) {
				free(dir);
				return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
			}
		} else {
			free(dir);
		}
		entry->role = ROLE_BATCH;
		entry->group = (long)g;
		entry->seq = seq;
		VEC_PUSH(p->groups[g].files, p->groups[g].file_count, p->groups[g].file_capacity, i, ok);
		if (!ok)
			return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		if (entry->mtime_sec > p->groups[g].mtime_sec ||
		    (entry->mtime_sec == p->groups[g].mtime_sec && entry->mtime_nsec > p->groups[g].mtime_nsec)) {
			p->groups[g].mtime_sec = entry->mtime_sec;
			p->groups[g].mtime_nsec = entry->mtime_nsec;
		}
	}
	sort_context = p;
	for (g = 0; g < p->group_count; g++)
		qsort(p->groups[g].files, p->groups[g].file_count, sizeof(size_t), compare_batch_files);
	return SF_OK;
}

static sf_err pack_group(packer *p, step_group *group, sf_error *err)
{
	long shard = -1;
	size_t i;
	sf_err rc = SF_OK;

	for (i = 0; i < group->file_count && rc == SF_OK; i++) {
		src_entry *entry = &p->entries[group->files[i]];

		if (shard >= 0 && shard_offset(p, shard) >= p->options->shard_bytes) {
			rc = shard_close(p, shard, err);
			shard = -1;
		}
		if (rc == SF_OK && shard < 0) {
			rc = step_shard_open(p, base_name(group->dir), &shard, err);
			if (rc == SF_OK && i == 0)
				group->first_shard = (uint32_t)shard;
		}
		if (rc == SF_OK)
			rc = pack_batch_file(p, entry, group, shard, err);
		group->batch_bytes += entry->size;
	}
	if (shard >= 0) {
		sf_err close_rc = shard_close(p, shard, err);

		if (rc == SF_OK)
			rc = close_rc;
		group->last_shard = (uint32_t)shard;
		for (i = group->first_shard; i <= group->last_shard; i++)
			if (strcmp(p->shards[i].kind, "step") == 0 &&
			    strcmp(p->shards[i].label, base_name(group->dir)) == 0)
				group->stored_bytes += p->shards[i].compressed_bytes;
	}
	return rc;
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
				rc = shard_open(p, "raw", "incompressible files", 1, &p->raw_shard, err);
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

/* Write an index document; returns its id in *id. Consumes entries. */
static sf_err write_index(packer *p, json_t *entries, long *id, sf_error *err)
{
	json_t *doc = json_pack("{s:s,s:o}", "format", "stepfs-index", "entries", entries);
	char name[64], buf[17], *text = NULL, *full = NULL;
	int fd = -1;
	sf_err rc = SF_OK;

	if (!doc)
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	snprintf(name, sizeof(name), "%s/%05zu.json", SF_STORE_INDEX_DIR, json_array_size(p->indexes));
	text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	full = sf_path_join(p->tmp, name);
	if (!text || !full) {
		rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		goto out;
	}
	fd = open(full, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || sf_write_all(fd, text, strlen(text)) != 0 || fsync(fd) != 0) {
		rc = sf_error_io(err, errno, "'%s': cannot write", full);
		goto out;
	}
	*id = (long)json_array_size(p->indexes);
	json_array_append_new(p->indexes,
			      json_pack("{s:s,s:s}", "file", name, "xxh64",
					hex64(sf_xxh64(text, strlen(text), 0), buf)));
out:
	if (fd >= 0)
		close(fd);
	free(full);
	free(text);
	json_decref(doc);
	return rc;
}

static sf_err write_source_index(packer *p, long *id, sf_error *err)
{
	json_t *entries = json_array();
	size_t i;

	if (!entries)
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	for (i = 0; i < p->entry_count; i++) {
		src_entry *e = &p->entries[i];
		json_t *item = NULL;

		if (e->type == SF_NODE_DIR)
			item = dir_json(e->path, e->mode, e->mtime_sec, e->mtime_nsec, -1);
		else if (e->type == SF_NODE_FILE)
			item = file_json(e->path, e->mode, e->mtime_sec, e->mtime_nsec, &e->segs, 1, e->xxh64);
		else
			item = symlink_json(e->path, e->target, e->mtime_sec, e->mtime_nsec);
		if (!item || json_array_append_new(entries, item) != 0) {
			json_decref(entries);
			return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		}
	}
	return write_index(p, entries, id, err);
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

/* ---- the step views ------------------------------------------------------ */

typedef struct execution {
	char *dir;             /* relative path of the execution folder */
	char *pipeline_dir;    /* relative path of <name> (holds steps_data/) */
	char *pipeline_name;
	char *pipeline_sig;
	char *exec_sig;
} execution;

static void execution_release(execution *x)
{
	free(x->dir);
	free(x->pipeline_dir);
	free(x->pipeline_name);
	free(x->pipeline_sig);
	free(x->exec_sig);
}

/*
 * Executions of the current layout: folders `<name>/<sig>/executions/<exec>/`
 * holding a batch_manager.json. Each path component is looked at from the end
 * so that a cache root, a pipelines/ folder or a pipeline folder all work.
 */
static sf_err find_executions(packer *p, execution **out, size_t *count, sf_error *err)
{
	execution *list = NULL;
	size_t n = 0, capacity = 0, i;
	int ok;

	for (i = 0; i < p->entry_count; i++) {
		src_entry *e = &p->entries[i];
		char *exec_dir, *executions, *sig_dir, *name_dir;
		execution x;

		if (e->type != SF_NODE_FILE || strcmp(base_name(e->path), "batch_manager.json") != 0)
			continue;
		exec_dir = parent_dir(e->path);
		executions = exec_dir ? parent_dir(exec_dir) : NULL;
		sig_dir = executions ? parent_dir(executions) : NULL;
		name_dir = sig_dir ? parent_dir(sig_dir) : NULL;
		if (!name_dir) {
			free(exec_dir);
			free(executions);
			free(sig_dir);
			return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		}
		if (!*exec_dir || strcmp(base_name(executions), "executions") != 0 || !*sig_dir) {
			free(exec_dir);
			free(executions);
			free(sig_dir);
			free(name_dir);
			continue;
		}
		memset(&x, 0, sizeof(x));
		x.dir = exec_dir;
		x.pipeline_dir = name_dir;
		x.exec_sig = sf_strdup(base_name(exec_dir));
		x.pipeline_sig = sf_strdup(base_name(sig_dir));
		x.pipeline_name = sf_strdup(*name_dir ? base_name(name_dir) : base_name(p->src));
		free(executions);
		free(sig_dir);
		VEC_PUSH(list, n, capacity, x, ok);
		if (!ok || !x.exec_sig || !x.pipeline_sig || !x.pipeline_name) {
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

/*
 * One execution's views: manager_meta.json, step_N/ (each its own index),
 * by-name/. Root entries are appended to root_entries under prefix.
 */
static sf_err build_execution(packer *p, const path_map *map, execution *x, const char *prefix,
			      json_t *root_entries, json_t *summary, sf_error *err)
{
	char **names = NULL, *manager_rel = NULL, *yaml_rel = NULL, *raw = NULL;
	size_t name_count = 0, raw_len = 0, i;
	src_entry *manager, *yaml;
	json_t *steps = json_array(), *step_summaries = json_array();
	sf_err rc = SF_OK;
	FILE *meta = NULL;
	char *meta_text = NULL;
	size_t meta_len = 0;
	seg_vec meta_segs = { NULL, 0, 0, 0 };

	manager_rel = sf_path_join(x->dir, "batch_manager.json");
	yaml_rel = sf_path_join(x->dir, "pipeline.yaml");
	if (!manager_rel || !yaml_rel || !steps || !step_summaries) {
		rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		goto out;
	}
	manager = path_map_find(p, map, manager_rel);
	yaml = path_map_find(p, map, yaml_rel);
	if (yaml && yaml->type == SF_NODE_FILE) {
		char *full = sf_path_join(p->src, yaml_rel);

		rc = full ? sf_pipeline_yaml_steps(full, &names, &name_count, err)
			  : sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		free(full);
		if (rc != SF_OK)
			goto out;
	}
	raw = read_json_text(p, manager_rel, 64u << 20, &raw_len, err);
	if (!raw) {
		rc = err ? err->code : SF_ERR_FORMAT;
		goto out;
	}
	if (name_count == 0) {
		/* no pipeline.yaml: the order of batch_manager.json's "steps" */
		json_t *doc = json_loadb(raw, raw_len, JSON_ALLOW_NUL, NULL), *map_steps;
		const char *key;
		json_t *value;

		map_steps = doc ? json_object_get(doc, "steps") : NULL;
		names = calloc(map_steps ? json_object_size(map_steps) + 1 : 1, sizeof(char *));
		if (names)
			json_object_foreach(map_steps, key, value) names[name_count++] = sf_strdup(key);
		if (doc)
			json_decref(doc);
	}
	for (i = 0; i < name_count; i++) {
		char step_dir_name[32], *step_rel, *sig = NULL, *step_view, *safe, *link_path, *link_target;
		src_entry *step_file;
		step_group *group = NULL;
		json_t *entries = json_array(), *info;
		long index_id = -1;
		size_t g, b;
		int64_t mtime_sec = manager ? manager->mtime_sec : 0;
		uint32_t mtime_nsec = manager ? manager->mtime_nsec : 0;

		snprintf(step_dir_name, sizeof(step_dir_name), "step_%zu", i);
		step_rel = sf_path_join(x->dir, "batch_manager_steps");
		{
			char *tmp = step_rel ? sf_path_join(step_rel, names[i]) : NULL;

			free(step_rel);
			step_rel = tmp ? sf_path_join(tmp, "batch_manager_step.json") : NULL;
			free(tmp);
		}
		if (!step_rel || !entries) {
			free(step_rel);
			json_decref(entries);
			rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
			goto out;
		}
		/* a step name with '/' cannot name a real folder; look it up anyway */
		step_file = strchr(names[i], '/') ? NULL : path_map_find(p, map, step_rel);
		if (step_file && step_file->type == SF_NODE_FILE)
			sig = top_level_string(p, step_rel, "step_signature");
		free(step_rel);
		for (g = 0; g < p->group_count; g++) {
			step_group *candidate = &p->groups[g];
			char *gparent = parent_dir(candidate->dir), *gpipe = gparent ? parent_dir(gparent) : NULL;
			const char *gname = base_name(candidate->dir);
			size_t nlen = strlen(names[i]);
			int same_pipeline = gpipe && strcmp(gpipe, x->pipeline_dir) == 0;

			free(gparent);
			free(gpipe);
			if (!same_pipeline || strncmp(gname, names[i], nlen) != 0 || gname[nlen] != '_')
				continue;
			if (sig ? strcmp(gname + nlen + 1, sig) == 0 : group == NULL)
				group = candidate;
			else if (!sig)
				group = NULL; /* ambiguous without a signature */
		}
		if (!sig && group)
			sig = sf_strdup(base_name(group->dir) + strlen(names[i]) + 1);
		if (group) {
			mtime_sec = group->mtime_sec;
			mtime_nsec = group->mtime_nsec;
		}
		if (step_file && step_file->type == SF_NODE_FILE)
			json_array_append_new(entries, file_json("step.json", 0444, step_file->mtime_sec,
								 step_file->mtime_nsec, &step_file->segs, 1,
								 step_file->xxh64));
		json_array_append_new(entries, dir_json("batches", 0555, mtime_sec, mtime_nsec, -1));
		for (b = 0; group && b < group->file_count; b++) {
			src_entry *batch = &p->entries[group->files[b]];
			char *bpath = sf_path_join("batches", base_name(batch->path));

			json_array_append_new(entries, file_json(bpath, 0444, batch->mtime_sec, batch->mtime_nsec,
								 &batch->segs, 1, batch->xxh64));
			free(bpath);
		}
		{
			seg_vec empty = { NULL, 0, 0, 0 };
			uint64_t rows_hash = 0;

			if (group)
				rows_hash = sf_xxh64_digest(&group->rows_hash);
			else
				rows_hash = sf_xxh64("", 0, 0);
			json_array_append_new(entries, file_json("rows.jsonl", 0444, mtime_sec, mtime_nsec,
								 group ? &group->rows_segs : &empty, 1, rows_hash));
		}
		rc = write_index(p, entries, &index_id, err);
		if (rc != SF_OK) {
			free(sig);
			goto out;
		}
		step_view = view_path(prefix, step_dir_name);
		json_array_append_new(root_entries, dir_json(step_view, 0555, mtime_sec, mtime_nsec, index_id));
		safe = safe_name(names[i]);
		link_path = view_path(prefix, "by-name");
		if (link_path && i == 0)
			json_array_append_new(root_entries, dir_json(link_path, 0555, manager ? manager->mtime_sec : 0,
								     manager ? manager->mtime_nsec : 0, -1));
		if (safe && link_path) {
			char *full_link = sf_path_join(link_path, safe);

			link_target = sf_path_join("..", step_dir_name);
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
				 "batches", (json_int_t)(group ? group->file_count : 0),
				 "rows", (json_int_t)(group ? group->rows : 0),
				 "bytes", "batch_files", (json_int_t)(group ? group->batch_bytes : 0),
				 "rows_jsonl", (json_int_t)(group ? group->rows_segs.total : 0),
				 "stored", (json_int_t)(group ? group->stored_bytes : 0));
		if (!info) {
			/* a name that is not UTF-8: keep it as hex */
			char *hex = sf_hex_encode(names[i], strlen(names[i]));

			info = json_pack("{s:I,s:s,s:s?,s:s,s:I,s:I}", "index", (json_int_t)i, "name_hex",
					 hex ? hex : "", "signature", sig, "path", step_view,
					 "batches", (json_int_t)(group ? group->file_count : 0),
					 "rows", (json_int_t)(group ? group->rows : 0));
			free(hex);
		}
		json_array_append(steps, info);
		json_array_append_new(step_summaries, info);
		p->steps_total++;
		free(step_view);
		free(sig);
	}
	if (name_count > 0 || manager) {
		char by_name[SF_MAX_PATH_BYTES];
		char *steps_text = json_dumps(steps, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		char *qname = json_quote(x->pipeline_name), *qsig = json_quote(x->pipeline_sig);
		char *qexec = json_quote(x->exec_sig), *qsource = NULL;
		char *source_path = view_path("source", x->dir);

		qsource = source_path ? json_quote(source_path) : NULL;
		meta = open_memstream(&meta_text, &meta_len);
		if (!meta || !steps_text || !qname || !qsig || !qexec || !qsource) {
			rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		} else {
			fprintf(meta, "{\n  \"stepfs\": {\"view\": \"manager_meta\", \"version\": 1},\n"
				      "  \"layout\": \"current\",\n"
				      "  \"pipeline\": {\"name\": %s, \"signature\": %s},\n"
				      "  \"execution\": %s,\n  \"source\": %s,\n  \"batch_manager\": ",
				qname, qsig, qexec, qsource);
			fwrite(raw, 1, raw_len, meta);
			fprintf(meta, ",\n  \"steps\": %s\n}\n", steps_text);
		}
		if (meta)
			fclose(meta);
		free(steps_text);
		free(qname);
		free(qsig);
		free(qexec);
		free(qsource);
		free(source_path);
		if (rc != SF_OK)
			goto out;
		rc = store_generated(p, meta_text, meta_len, &meta_segs, err);
		if (rc != SF_OK)
			goto out;
		snprintf(by_name, sizeof(by_name), "%s%smanager_meta.json", prefix, *prefix ? "/" : "");
		json_array_append_new(root_entries,
				      file_json(by_name, 0444, manager ? manager->mtime_sec : 0,
						manager ? manager->mtime_nsec : 0, &meta_segs, 1,
						sf_xxh64(meta_text, meta_len, 0)));
	}
	json_array_append_new(summary, json_pack("{s:s,s:s,s:s,s:s,s:O}", "path", prefix,
						 "pipeline", x->pipeline_name, "signature", x->pipeline_sig,
						 "execution", x->exec_sig, "steps", step_summaries));
out:
	free(meta_segs.items);
	free(meta_text);
	free(raw);
	json_decref(steps);
	json_decref(step_summaries);
	sf_pipeline_yaml_names_free(names, name_count);
	free(manager_rel);
	free(yaml_rel);
	return rc;
}

/* Root manager_meta.json of a plain tree or of several executions. */
static sf_err build_root_meta(packer *p, json_t *executions, json_t *root_entries,
			       const struct stat *src_st, sf_error *err)
{
	json_t *doc = json_pack("{s:{s:s,s:i},s:s,s:s,s:O}", "stepfs", "view", "manager_meta", "version", 1,
				"layout", p->layout, "source", "source", "executions", executions);
	char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	seg_vec segs = { NULL, 0, 0, 0 };
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

	for (i = 0; shards && i < p->shard_count; i++)
		json_array_append_new(shards, json_pack("{s:s,s:s,s:s,s:I,s:I,s:I}", "file", p->shards[i].file,
							"kind", p->shards[i].kind, "label", p->shards[i].label,
							"content_bytes", (json_int_t)p->shards[i].content_bytes,
							"compressed_bytes", (json_int_t)p->shards[i].compressed_bytes,
							"frames", (json_int_t)p->shards[i].frames));
	doc = json_pack("{s:s,s:[ii],s:s,s:s,s:{s:s,s:i,s:I,s:b,s:s},s:s,s:{s:I,s:I,s:I,s:I,s:o},s:o,s:O,s:I,s:O}",
			"format", SF_FORMAT_NAME, "format_version", SF_FORMAT_MAJOR, SF_FORMAT_MINOR,
			"writer", "stepstore " SF_VERSION, "created", iso_time_now(created),
			"compression", "codec", "zstd", "level", p->options->level,
			"frame_bytes", (json_int_t)p->options->frame_bytes,
			"long_distance", p->options->long_distance,
			"checksums", "zstd content checksum and seek-table XXH64 per frame",
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
}

static void packer_release(packer *p)
{
	size_t i;

	for (i = 0; i < p->entry_count; i++) {
		free(p->entries[i].path);
		free(p->entries[i].target);
		free(p->entries[i].segs.items);
	}
	free(p->entries);
	for (i = 0; i < p->group_count; i++) {
		free(p->groups[i].dir);
		free(p->groups[i].files);
		free(p->groups[i].rows_segs.items);
	}
	free(p->groups);
	for (i = 0; i < p->shard_count; i++) {
		sf_seek_writer_free(p->shards[i].writer);
		if (p->shards[i].fd >= 0)
			close(p->shards[i].fd);
		free(p->shards[i].file);
		free(p->shards[i].label);
	}
	free(p->shards);
	if (p->indexes)
		json_decref(p->indexes);
	if (p->execution_summaries)
		json_decref(p->execution_summaries);
	free(p->buffer);
	free(p->tmp);
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
		if (p.entries[i].type == SF_NODE_DIR)
			summary.dirs++;
		else if (p.entries[i].type == SF_NODE_FILE)
			summary.files++, summary.source_bytes += p.entries[i].size;
		else
			summary.symlinks++;
	}
	rc = path_map_build(&p, &map, err);
	if (rc == SF_OK)
		rc = find_executions(&p, &executions, &execution_count, err);
	if (rc != SF_OK)
		goto out;
	if (strcmp(options->layout ? options->layout : "auto", "auto") == 0)
		p.layout = execution_count ? "current" : "plain";
	else if (strcmp(options->layout, "current") == 0 || strcmp(options->layout, "plain") == 0)
		p.layout = options->layout;
	else {
		rc = sf_error_set(err, SF_ERR_INVALID, "unknown layout '%s' (expected auto, current or plain)",
				  options->layout);
		goto out;
	}
	if (strcmp(p.layout, "current") == 0 && execution_count == 0) {
		rc = sf_error_set(err, SF_ERR_FORMAT,
				  "'%s': no execution of the current layout found (expected <name>/<signature>/executions/<execution>/batch_manager.json)",
				  src);
		goto out;
	}
	if (strcmp(p.layout, "current") == 0)
		rc = find_groups(&p, err);
	if (rc == SF_OK)
		rc = shard_open(&p, "files", "files", options->level, &p.files_shard, err);
	if (rc == SF_OK)
		rc = pack_plain_files(&p, err);
	for (i = 0; rc == SF_OK && i < p.group_count; i++) {
		rc = pack_group(&p, &p.groups[i], err);
		summary.batches += p.groups[i].file_count;
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
	if (rc == SF_OK)
		rc = write_index(&p, root_entries, &root_index, err);
	root_entries = NULL;
	if (rc == SF_OK)
		rc = write_store_json(&p, root_index, &src_st, err);
	if (rc == SF_OK)
		rc = check_cancel(&p, err);
	if (rc == SF_OK)
		rc = sync_and_commit(&p, store_copy, parent, err);
	if (rc == SF_OK) {
		tmp_made = 0;
		for (i = 0; i < p.shard_count; i++)
			summary.store_bytes += p.shards[i].compressed_bytes;
		summary.layout = p.layout;
		summary.steps = p.steps_total;
		draw_progress(&p, 1);
		if (summary_out)
			*summary_out = summary;
	}
out:
	if (p.options->progress && rc != SF_OK)
		fputc('\n', stderr);
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
