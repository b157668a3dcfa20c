#include "sf_seekable.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* For ZSTD_getFrameHeader() and ZSTD_BLOCKSIZE_MAX; both are exported by
   the shared libzstd and stable across the 1.5 series. */
#define ZSTD_STATIC_LINKING_ONLY
/* ZDICT_trainFromBuffer_fastCover() with fixed parameters: exported by
   the shared libzstd since 1.4 and several times faster than the
   parameter search ZDICT_trainFromBuffer() runs. */
#define ZDICT_STATIC_LINKING_ONLY
#include <zdict.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "sf_util.h"
#include "sf_xxhash.h"

#define SEEK_ENTRY_BYTES 12u
#define SEEK_SKIPPABLE_HEADER_BYTES 8u
#define SEEK_RESERVED_BITS 0x7Cu
#define SEEK_MIN_FRAME_BYTES (4u * 1024u)
#define SEEK_MAX_THREADS 256

static inline void put_le32(unsigned char *p, uint32_t value)
{
	p[0] = (unsigned char)value;
	p[1] = (unsigned char)(value >> 8);
	p[2] = (unsigned char)(value >> 16);
	p[3] = (unsigned char)(value >> 24);
}

static inline uint32_t get_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline uint32_t seek_checksum(const void *data, size_t len)
{
	return (uint32_t)sf_xxh64(data, len, 0);
}

/* ---- stored frames ----------------------------------------------------
 *
 * A zstd frame of raw blocks: magic, a single-segment header carrying the
 * content size and the checksum flag, blocks of at most ZSTD_BLOCKSIZE_MAX
 * bytes stored verbatim, then the low 32 bits of XXH64 of the content.
 * Any zstd decoder reads it back at memcpy speed.
 */

static size_t seek_raw_frame_bound(size_t len)
{
	size_t blocks = (len + ZSTD_BLOCKSIZE_MAX - 1) / ZSTD_BLOCKSIZE_MAX;

	if (blocks == 0)
		blocks = 1;
	return 4 + 1 + 4 + 3 * blocks + len + 4;
}

/* The largest compressed size a frame of len content bytes may have. */
static size_t seek_frame_bound(size_t len)
{
	size_t compressed = ZSTD_compressBound(len);
	size_t raw = seek_raw_frame_bound(len);

	return compressed > raw ? compressed : raw;
}

static size_t seek_raw_frame_build(unsigned char *out, const unsigned char *content,
				   size_t len, uint32_t checksum)
{
	unsigned char *p = out;
	size_t left = len;

	put_le32(p, ZSTD_MAGICNUMBER);
	p += 4;
	/* Descriptor: single segment (0x20), content checksum (0x04), and
	   the smallest content size field that holds len. */
	if (len < 256) {
		*p++ = 0x24;
		*p++ = (unsigned char)len;
	} else if (len < 65536 + 256) {
		*p++ = 0x64;
		*p++ = (unsigned char)(len - 256);
		*p++ = (unsigned char)((len - 256) >> 8);
	} else {
		*p++ = 0xA4;
		put_le32(p, (uint32_t)len);
		p += 4;
	}
	do {
		size_t block = left < ZSTD_BLOCKSIZE_MAX ? left : ZSTD_BLOCKSIZE_MAX;
		uint32_t header = (uint32_t)(block << 3) | (left == block ? 1u : 0u);

		/* Block type 0 (raw) sits in bits 1-2, so it adds nothing. */
		p[0] = (unsigned char)header;
		p[1] = (unsigned char)(header >> 8);
		p[2] = (unsigned char)(header >> 16);
		p += 3;
		memcpy(p, content, block);
		p += block;
		content += block;
		left -= block;
	} while (left > 0);
	put_le32(p, checksum);
	p += 4;
	return (size_t)(p - out);
}

/* ---- writer -------------------------------------------------------- */

enum seek_job_state {
	JOB_FREE,
	JOB_FILLING,  /* the caller is copying content into it */
	JOB_QUEUED,   /* waiting for a worker */
	JOB_RUNNING,
	JOB_DONE      /* compressed (or failed), waiting to be written */
};

struct seek_job {
	enum seek_job_state state;
	uint32_t frame_index;
	uint64_t content_offset;
	unsigned char *content;
	size_t content_len;
	unsigned char *output;
	size_t output_len;
	uint32_t checksum;
	sf_err code;
	sf_error error;
};

struct seek_entry {
	uint32_t compressed_size;
	uint32_t decompressed_size;
	uint32_t checksum;
};

struct seek_worker {
	sf_seek_writer *writer;
	ZSTD_CCtx *cctx;
	pthread_t thread;
	int started;
};

struct sf_seek_writer {
	int fd;
	char *path;
	sf_seek_writer_options options;
	size_t output_capacity;

	/* Ring of jobs: `used` submitted jobs start at `head` (oldest, next
	   to be written); the filling job, if any, follows them; `pending`
	   queued jobs start at `take`. Guarded by lock except where only the
	   caller touches them (the filling job, head's buffers once DONE). */
	struct seek_job *jobs;
	unsigned job_count;
	unsigned head;
	unsigned used;
	unsigned take;
	unsigned pending;
	int filling;
	int stop;
	pthread_mutex_t lock;
	pthread_cond_t work_cond;
	pthread_cond_t done_cond;
	int sync_ready;

	struct seek_worker *workers;
	int worker_count;

	struct seek_entry *entries;
	uint32_t entry_count;
	uint32_t entry_capacity;
	uint32_t frames_submitted;
	uint64_t content_bytes;
	uint64_t compressed_bytes;

	int finished;
	sf_err failed;
	sf_error failure;

	/* Dictionary training: content is held back here, with the offsets
	   where end_frame was called, until the dictionary is decided. */
	int holding;
	unsigned char *held;
	size_t held_len, held_capacity;
	size_t *cuts;
	size_t cut_count, cut_capacity;
	void *dict;
	sf_seek_dict_info dict_info;
};

static sf_err seek_job_compress(const sf_seek_writer *writer, ZSTD_CCtx *cctx,
				struct seek_job *job)
{
	size_t size;

	size = ZSTD_compress2(cctx, job->output, writer->output_capacity,
			      job->content, job->content_len);
	if (ZSTD_isError(size)) {
		sf_err code = ZSTD_getErrorCode(size) == ZSTD_error_memory_allocation
				      ? SF_ERR_NOMEM
				      : SF_ERR_INVALID;

		job->code = sf_error_set(&job->error, code,
					 "'%s': frame %" PRIu32 " (content byte %" PRIu64
					 "): compression failed: %s",
					 writer->path, job->frame_index,
					 job->content_offset, ZSTD_getErrorName(size));
		return job->code;
	}
	if (size >= job->content_len) {
		job->checksum = seek_checksum(job->content, job->content_len);
		size = seek_raw_frame_build(job->output, job->content,
					    job->content_len, job->checksum);
	} else {
		/* the frame ends with zstd's content checksum, which is the
		   seek table's: the low 32 bits of XXH64 (seed 0), little
		   endian. Hashing the content again cost 3% of a pack. */
		job->checksum = get_le32(job->output + size - 4);
	}
	job->output_len = size;
	job->code = SF_OK;
	return SF_OK;
}

static void *seek_worker_main(void *arg)
{
	struct seek_worker *worker = arg;
	sf_seek_writer *writer = worker->writer;

	pthread_mutex_lock(&writer->lock);
	for (;;) {
		struct seek_job *job;

		while (!writer->stop && writer->pending == 0)
			pthread_cond_wait(&writer->work_cond, &writer->lock);
		if (writer->stop)
			break;
		job = &writer->jobs[writer->take];
		writer->take = (writer->take + 1) % writer->job_count;
		writer->pending--;
		job->state = JOB_RUNNING;
		pthread_mutex_unlock(&writer->lock);

		seek_job_compress(writer, worker->cctx, job);

		pthread_mutex_lock(&writer->lock);
		job->state = JOB_DONE;
		pthread_cond_signal(&writer->done_cond);
	}
	pthread_mutex_unlock(&writer->lock);
	return NULL;
}

static ZSTD_CCtx *seek_cctx_create(const sf_seek_writer_options *options)
{
	ZSTD_CCtx *cctx = ZSTD_createCCtx();

	if (!cctx)
		return NULL;
	if (ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel,
						options->level)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1)) ||
	    (options->long_distance &&
	     ZSTD_isError(ZSTD_CCtx_setParameter(
		     cctx, ZSTD_c_enableLongDistanceMatching, 1)))) {
		ZSTD_freeCCtx(cctx);
		return NULL;
	}
	return cctx;
}

/* Write the oldest job to fd, waiting for its compression first. */
static sf_err seek_writer_flush_head(sf_seek_writer *writer)
{
	struct seek_job *job = &writer->jobs[writer->head];
	struct seek_entry *entry;
	sf_err code = SF_OK;

	if (writer->worker_count > 0) {
		pthread_mutex_lock(&writer->lock);
		while (job->state != JOB_DONE)
			pthread_cond_wait(&writer->done_cond, &writer->lock);
		pthread_mutex_unlock(&writer->lock);
	}
	if (job->code != SF_OK) {
		writer->failure = job->error;
		code = job->code;
		goto out;
	}
	if (writer->entry_count == writer->entry_capacity) {
		uint32_t capacity = writer->entry_capacity ? writer->entry_capacity * 2 : 64;
		struct seek_entry *grown = realloc(writer->entries,
						   capacity * sizeof(*grown));

		if (!grown) {
			code = sf_error_set(&writer->failure, SF_ERR_NOMEM,
					    "'%s': out of memory for the seek table",
					    writer->path);
			goto out;
		}
		writer->entries = grown;
		writer->entry_capacity = capacity;
	}
	if (sf_write_all(writer->fd, job->output, job->output_len) != 0) {
		code = sf_error_io(&writer->failure, errno,
				   "'%s': byte %" PRIu64 ": cannot write frame %" PRIu32
				   " (%zu bytes)",
				   writer->path, writer->compressed_bytes,
				   job->frame_index, job->output_len);
		goto out;
	}
	entry = &writer->entries[writer->entry_count++];
	entry->compressed_size = (uint32_t)job->output_len;
	entry->decompressed_size = (uint32_t)job->content_len;
	entry->checksum = job->checksum;
	writer->compressed_bytes += job->output_len;
out:
	if (writer->worker_count > 0)
		pthread_mutex_lock(&writer->lock);
	job->state = JOB_FREE;
	writer->head = (writer->head + 1) % writer->job_count;
	writer->used--;
	if (writer->worker_count > 0)
		pthread_mutex_unlock(&writer->lock);
	return code;
}

/* Write every job at the head whose compression has already ended. */
static sf_err seek_writer_flush_ready(sf_seek_writer *writer)
{
	sf_err code = SF_OK;

	while (code == SF_OK && writer->used > 0) {
		int ready;

		pthread_mutex_lock(&writer->lock);
		ready = writer->jobs[writer->head].state == JOB_DONE;
		pthread_mutex_unlock(&writer->lock);
		if (!ready)
			break;
		code = seek_writer_flush_head(writer);
	}
	return code;
}

/* Make sure a job is open for content, flushing the oldest when full. */
static sf_err seek_writer_open_job(sf_seek_writer *writer, struct seek_job **out)
{
	struct seek_job *job;
	sf_err code = SF_OK;

	if (writer->filling) {
		*out = &writer->jobs[(writer->head + writer->used) % writer->job_count];
		return SF_OK;
	}
	if (writer->frames_submitted >= SF_SEEK_MAX_FRAMES)
		return sf_error_set(&writer->failure, SF_ERR_LIMIT,
				    "'%s': content byte %" PRIu64
				    ": a shard holds at most %u frames",
				    writer->path, writer->content_bytes,
				    SF_SEEK_MAX_FRAMES);
	while (writer->used == writer->job_count) {
		code = seek_writer_flush_head(writer);
		if (code != SF_OK)
			return code;
	}
	job = &writer->jobs[(writer->head + writer->used) % writer->job_count];
	if (!job->content)
		job->content = malloc(writer->options.frame_bytes);
	if (!job->output)
		job->output = malloc(writer->output_capacity);
	if (!job->content || !job->output)
			return sf_error_set(&writer->failure, SF_ERR_NOMEM,
					    "'%s': out of memory for a %zu-byte frame",
					    writer->path, writer->options.frame_bytes);
	job->state = JOB_FILLING;
	job->frame_index = writer->frames_submitted;
	job->content_offset = writer->content_bytes;
	job->content_len = 0;
	job->output_len = 0;
	job->code = SF_OK;
	writer->filling = 1;
	*out = job;
	return SF_OK;
}

static sf_err seek_writer_submit(sf_seek_writer *writer)
{
	struct seek_job *job;

	if (!writer->filling)
		return SF_OK;
	job = &writer->jobs[(writer->head + writer->used) % writer->job_count];
	writer->filling = 0;
	writer->frames_submitted++;
	if (writer->worker_count == 0) {
		seek_job_compress(writer, writer->workers[0].cctx, job);
		job->state = JOB_DONE;
		writer->used++;
		return seek_writer_flush_head(writer);
	}
	pthread_mutex_lock(&writer->lock);
	job->state = JOB_QUEUED;
	writer->used++;
	writer->pending++;
	pthread_cond_signal(&writer->work_cond);
	pthread_mutex_unlock(&writer->lock);
	return seek_writer_flush_ready(writer);
}

static sf_err seek_writer_append(sf_seek_writer *writer, const unsigned char *data,
				 size_t len)
{
	sf_err code = SF_OK;

	while (len > 0) {
		struct seek_job *job = NULL;
		size_t room, take;

		code = seek_writer_open_job(writer, &job);
		if (code != SF_OK)
			break;
		room = writer->options.frame_bytes - job->content_len;
		take = len < room ? len : room;
		memcpy(job->content + job->content_len, data, take);
		job->content_len += take;
		writer->content_bytes += take;
		data += take;
		len -= take;
		if (job->content_len == writer->options.frame_bytes) {
			code = seek_writer_submit(writer);
			if (code != SF_OK)
				break;
		}
	}
	return code;
}

/* ---- dictionary ---------------------------------------------------- */

#define SEEK_DICT_SAMPLE_PIECE (16u * 1024u)

/* Ends of the frames the held content will become: cut at every
   end_frame offset and every frame_bytes, exactly as the append path
   cuts them. *out is malloc'd. */
static size_t *seek_held_frames(const sf_seek_writer *writer, size_t *count)
{
	size_t capacity = writer->held_len / writer->options.frame_bytes +
			  writer->cut_count + 2;
	size_t *ends = malloc(capacity * sizeof(*ends));
	size_t start = 0, n = 0, cut = 0;

	if (!ends)
		return NULL;
	while (start < writer->held_len) {
		size_t end = start + writer->options.frame_bytes;

		while (cut < writer->cut_count && writer->cuts[cut] <= start)
			cut++;
		if (cut < writer->cut_count && writer->cuts[cut] < end)
			end = writer->cuts[cut];
		if (end > writer->held_len)
			end = writer->held_len;
		ends[n++] = end;
		start = end;
	}
	*count = n;
	return ends;
}

/* Size a frame of len bytes takes when compressed by cctx (or stored). */
static size_t seek_probe_frame(ZSTD_CCtx *cctx, unsigned char *out, size_t capacity,
			       const unsigned char *content, size_t len)
{
	size_t size = ZSTD_compress2(cctx, out, capacity, content, len);

	if (ZSTD_isError(size) || size >= len)
		return seek_raw_frame_bound(len);
	return size;
}

/* Train a dictionary on the held content. Returns 0 when none came out. */
static size_t seek_dict_train(sf_seek_writer *writer, const size_t *ends,
			      size_t frame_count)
{
	size_t capacity = writer->held_len / 100, pieces = 0, start = 0, size, taken = 0, seen = 0;
	size_t stride = writer->held_len / SF_SEEK_DICT_TRAIN_BYTES + 1;
	size_t *sizes;
	unsigned char *spread = NULL;
	const unsigned char *samples = writer->held;

	if (capacity < SF_SEEK_DICT_MIN_BYTES)
		capacity = SF_SEEK_DICT_MIN_BYTES;
	if (capacity > SF_SEEK_DICT_MAX_BYTES)
		capacity = SF_SEEK_DICT_MAX_BYTES;
	sizes = malloc((writer->held_len / SEEK_DICT_SAMPLE_PIECE + frame_count + 1) *
		       sizeof(*sizes));
	writer->dict = malloc(capacity);
	if (stride > 1)
		spread = malloc(writer->held_len / stride + SEEK_DICT_SAMPLE_PIECE);
	if (!sizes || !writer->dict || (stride > 1 && !spread)) {
		free(sizes);
		free(spread);
		return 0;
	}
	/* The trainer wants many samples: frames, split into pieces; every
	   stride-th piece when the sample is larger than it needs. */
	for (size_t i = 0; i < frame_count; i++) {
		while (start < ends[i]) {
			size_t piece = ends[i] - start;

			if (piece > SEEK_DICT_SAMPLE_PIECE)
				piece = SEEK_DICT_SAMPLE_PIECE;
			if (stride == 1) {
				sizes[pieces++] = piece;
			} else if (seen++ % stride == 0) {
				memcpy(spread + taken, writer->held + start, piece);
				taken += piece;
				sizes[pieces++] = piece;
			}
			start += piece;
		}
	}
	if (spread)
		samples = spread;
	{
		ZDICT_fastCover_params_t params;

		memset(&params, 0, sizeof(params));
		params.k = 200; /* zstd --train-fastcover's defaults */
		params.d = 8;
		params.f = 20;
		params.steps = 0;
		params.accel = 1;
		params.splitPoint = 1.0;
		params.zParams.compressionLevel = writer->options.level;
		size = ZDICT_trainFromBuffer_fastCover(writer->dict, capacity, samples,
						       sizes, (unsigned)pieces, params);
	}
	free(sizes);
	free(spread);
	if (ZDICT_isError(size) || ZDICT_getDictID(writer->dict, size) == 0)
		return 0;
	return size;
}

/* Compress a spread of the held frames with and without the dictionary. */
static sf_err seek_dict_probe(sf_seek_writer *writer, const size_t *ends,
			      size_t frame_count)
{
	sf_seek_dict_info *info = &writer->dict_info;
	ZSTD_CCtx *plain = seek_cctx_create(&writer->options);
	ZSTD_CCtx *with = seek_cctx_create(&writer->options);
	unsigned char *out = malloc(writer->output_capacity);
	size_t stride = writer->held_len / SF_SEEK_DICT_PROBE_BYTES + 1, start = 0;
	sf_err code = SF_OK;

	if (!plain || !with || !out ||
	    ZSTD_isError(ZSTD_CCtx_loadDictionary(with, writer->dict, info->dict_bytes))) {
		code = sf_error_set(&writer->failure, SF_ERR_NOMEM,
				    "'%s': out of memory to measure a dictionary",
				    writer->path);
		goto out;
	}
	for (size_t i = 0; i < frame_count; i++) {
		size_t len = ends[i] - start;

		if (i % stride == 0) {
			info->probe_bytes += len;
			info->probe_plain += seek_probe_frame(plain, out, writer->output_capacity,
							      writer->held + start, len);
			info->probe_dict += seek_probe_frame(with, out, writer->output_capacity,
							     writer->held + start, len);
		}
		start = ends[i];
	}
out:
	free(out);
	ZSTD_freeCCtx(with);
	ZSTD_freeCCtx(plain);
	return code;
}

/* Train, measure and decide; on use, load the dictionary into every
   worker's context (no job has run yet, so no worker touches them). */
static sf_err seek_dict_decide(sf_seek_writer *writer)
{
	sf_seek_dict_info *info = &writer->dict_info;
	size_t frame_count = 0;
	size_t *ends;
	double saving;
	int expected;
	sf_err code = SF_OK;

	info->held_bytes = writer->held_len;
	if (writer->held_len < 4 * SF_SEEK_DICT_MIN_BYTES) {
		info->reason = "too little content to train a dictionary";
		return SF_OK;
	}
	ends = seek_held_frames(writer, &frame_count);
	if (!ends)
		return sf_error_set(&writer->failure, SF_ERR_NOMEM,
				    "'%s': out of memory to train a dictionary",
				    writer->path);
	info->dict_bytes = seek_dict_train(writer, ends, frame_count);
	if (info->dict_bytes == 0) {
		info->reason = "no dictionary could be trained on this content";
		goto out;
	}
	info->dict_id = ZDICT_getDictID(writer->dict, info->dict_bytes);
	code = seek_dict_probe(writer, ends, frame_count);
	if (code != SF_OK)
		goto out;
	/* a full sample means more content follows: weigh the saving over the
	   shard's expected size when the caller knows it */
	expected = writer->options.expected_bytes > writer->held_len &&
		   writer->held_len == SF_SEEK_DICT_SAMPLE_BYTES;
	saving = ((double)info->probe_plain - (double)info->probe_dict) *
		 (double)(expected ? writer->options.expected_bytes : writer->held_len) /
		 (double)info->probe_bytes;
	if (writer->options.dictionary == SF_SEEK_DICT_ALWAYS) {
		info->used = 1;
		info->reason = "requested (always)";
	} else if (saving * 100.0 > (double)SF_SEEK_DICT_MARGIN_PERCENT *
					    (double)info->dict_bytes) {
		info->used = 1;
		info->reason = expected ? "its saving over the shard's expected size exceeds 1.5 times its size"
					: "its saving on the sample exceeds 1.5 times its size";
	} else {
		info->reason = expected ? "its saving over the shard's expected size is below 1.5 times its size"
					: "its saving on the sample (the shard's first 8 MiB at most) is below 1.5 times its size";
	}
	for (int i = 0; info->used && i < writer->options.threads; i++) {
		if (ZSTD_isError(ZSTD_CCtx_loadDictionary(writer->workers[i].cctx,
							  writer->dict,
							  info->dict_bytes))) {
			code = sf_error_set(&writer->failure, SF_ERR_NOMEM,
					    "'%s': cannot load a %zu-byte dictionary",
					    writer->path, info->dict_bytes);
			break;
		}
	}
out:
	free(ends);
	return code;
}

/* Keep content back for training; stop holding once the sample is full. */
static sf_err seek_writer_hold(sf_seek_writer *writer, const unsigned char **data,
			       size_t *len)
{
	size_t take = SF_SEEK_DICT_SAMPLE_BYTES - writer->held_len;

	if (take > *len)
		take = *len;
	if (writer->held_len + take > writer->held_capacity) {
		size_t capacity = writer->held_capacity ? writer->held_capacity : 256u * 1024u;
		unsigned char *grown;

		while (capacity < writer->held_len + take)
			capacity *= 2;
		if (capacity > SF_SEEK_DICT_SAMPLE_BYTES)
			capacity = SF_SEEK_DICT_SAMPLE_BYTES;
		grown = realloc(writer->held, capacity);
		if (!grown)
			return sf_error_set(&writer->failure, SF_ERR_NOMEM,
					    "'%s': out of memory for a dictionary sample",
					    writer->path);
		writer->held = grown;
		writer->held_capacity = capacity;
	}
	memcpy(writer->held + writer->held_len, *data, take);
	writer->held_len += take;
	writer->content_bytes += take;
	*data += take;
	*len -= take;
	return SF_OK;
}

static sf_err seek_writer_hold_cut(sf_seek_writer *writer)
{
	if (writer->held_len == 0 ||
	    (writer->cut_count > 0 && writer->cuts[writer->cut_count - 1] == writer->held_len))
		return SF_OK;
	if (writer->cut_count == writer->cut_capacity) {
		size_t capacity = writer->cut_capacity ? 2 * writer->cut_capacity : 256;
		size_t *grown = realloc(writer->cuts, capacity * sizeof(*grown));

		if (!grown)
			return sf_error_set(&writer->failure, SF_ERR_NOMEM,
					    "'%s': out of memory for a dictionary sample",
					    writer->path);
		writer->cuts = grown;
		writer->cut_capacity = capacity;
	}
	writer->cuts[writer->cut_count++] = writer->held_len;
	return SF_OK;
}

/* Decide the dictionary, then send the held content down the normal path,
   cut where it would have been cut without holding. */
static sf_err seek_writer_release(sf_seek_writer *writer)
{
	size_t start = 0;
	sf_err code;

	writer->holding = 0;
	code = seek_dict_decide(writer);
	writer->content_bytes -= writer->held_len;
	for (size_t i = 0; code == SF_OK && i < writer->cut_count; i++) {
		code = seek_writer_append(writer, writer->held + start,
					  writer->cuts[i] - start);
		if (code == SF_OK)
			code = seek_writer_submit(writer);
		start = writer->cuts[i];
	}
	if (code == SF_OK)
		code = seek_writer_append(writer, writer->held + start,
					  writer->held_len - start);
	free(writer->held);
	free(writer->cuts);
	writer->held = NULL;
	writer->cuts = NULL;
	writer->held_len = writer->held_capacity = 0;
	writer->cut_count = writer->cut_capacity = 0;
	return code;
}

/* Refuse calls after a failure or after finish, repeating the first error. */
static sf_err seek_writer_usable(sf_seek_writer *writer)
{
	if (writer->failed != SF_OK)
		return writer->failed;
	if (writer->finished)
		return sf_error_set(&writer->failure, SF_ERR_INVALID,
				    "'%s': shard already finished", writer->path);
	return SF_OK;
}

static sf_err seek_writer_report(sf_seek_writer *writer, sf_err code, sf_error *err)
{
	if (code != SF_OK) {
		writer->failed = code;
		if (err)
			*err = writer->failure;
	}
	return code;
}

sf_err sf_seek_writer_create(sf_seek_writer **out, int fd, const char *path,
			     const sf_seek_writer_options *options, sf_error *err)
{
	sf_seek_writer *writer = NULL;
	pthread_mutexattr_t attr;
	sf_err code = SF_OK;
	int threads;

	*out = NULL;
	if (!path)
		path = "(unnamed)";
	if (options->frame_bytes < SEEK_MIN_FRAME_BYTES ||
	    options->frame_bytes > SF_SEEK_MAX_FRAME_BYTES)
		return sf_error_set(err, SF_ERR_INVALID,
				    "'%s': frame size %zu outside %u..%u bytes", path,
				    options->frame_bytes, SEEK_MIN_FRAME_BYTES,
				    SF_SEEK_MAX_FRAME_BYTES);
	if (options->threads < 1 || options->threads > SEEK_MAX_THREADS)
		return sf_error_set(err, SF_ERR_INVALID,
				    "'%s': %d compression threads, expected 1..%d", path,
				    options->threads, SEEK_MAX_THREADS);
	if (options->level < ZSTD_minCLevel() || options->level > ZSTD_maxCLevel())
		return sf_error_set(err, SF_ERR_INVALID,
				    "'%s': zstd level %d outside %d..%d", path,
				    options->level, ZSTD_minCLevel(), ZSTD_maxCLevel());
	if (options->dictionary < SF_SEEK_DICT_NEVER ||
	    options->dictionary > SF_SEEK_DICT_ALWAYS)
		return sf_error_set(err, SF_ERR_INVALID,
				    "'%s': dictionary mode %d, expected 0..2", path,
				    options->dictionary);

	writer = calloc(1, sizeof(*writer));
	if (!writer)
		return sf_error_set(err, SF_ERR_NOMEM, "'%s': out of memory", path);
	writer->fd = fd;
	writer->options = *options;
	writer->output_capacity = seek_frame_bound(options->frame_bytes);
	threads = options->threads;
	/* Two jobs per worker keep every worker busy while the caller fills
	   the next frame and the oldest waits to be written. */
	writer->job_count = threads == 1 ? 1u : 2u * (unsigned)threads;
	writer->path = sf_strdup(path);
	writer->jobs = calloc(writer->job_count, sizeof(*writer->jobs));
	writer->workers = calloc((size_t)threads, sizeof(*writer->workers));
	if (!writer->path || !writer->jobs || !writer->workers) {
		code = sf_error_set(err, SF_ERR_NOMEM, "'%s': out of memory", path);
		goto fail;
	}
	for (int i = 0; i < threads; i++) {
		writer->workers[i].writer = writer;
		writer->workers[i].cctx = seek_cctx_create(options);
		if (!writer->workers[i].cctx) {
			code = sf_error_set(err, SF_ERR_NOMEM,
					    "'%s': cannot set up zstd compression "
					    "(level %d)", path, options->level);
			goto fail;
		}
	}

	pthread_mutexattr_init(&attr);
#if defined(SF_DEBUG_MUTEX) && SF_DEBUG_MUTEX
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
#endif
	pthread_mutex_init(&writer->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	pthread_cond_init(&writer->work_cond, NULL);
	pthread_cond_init(&writer->done_cond, NULL);
	writer->sync_ready = 1;
	writer->holding = options->dictionary != SF_SEEK_DICT_NEVER;
	writer->dict_info.reason = "not requested";

	if (threads > 1) {
		for (int i = 0; i < threads; i++) {
			int rc = pthread_create(&writer->workers[i].thread, NULL,
						seek_worker_main, &writer->workers[i]);

			if (rc != 0) {
				code = sf_error_set(err, SF_ERR_NOMEM,
						    "'%s': cannot start compression "
						    "thread %d: %s", path, i, strerror(rc));
				goto fail;
			}
			writer->workers[i].started = 1;
			writer->worker_count++;
		}
	}
	*out = writer;
	return SF_OK;
fail:
	sf_seek_writer_free(writer);
	return code;
}

sf_err sf_seek_writer_write(sf_seek_writer *writer, const void *data, size_t len,
			    sf_error *err)
{
	sf_err code = seek_writer_usable(writer);

	if (code == SF_OK && writer->holding) {
		code = seek_writer_hold(writer, (const unsigned char **)&data, &len);
		if (code == SF_OK && writer->held_len == SF_SEEK_DICT_SAMPLE_BYTES)
			code = seek_writer_release(writer);
	}
	if (code == SF_OK && len > 0)
		code = seek_writer_append(writer, data, len);
	return seek_writer_report(writer, code, err);
}

sf_err sf_seek_writer_end_frame(sf_seek_writer *writer, sf_error *err)
{
	sf_err code = seek_writer_usable(writer);

	if (code == SF_OK)
		code = writer->holding ? seek_writer_hold_cut(writer)
				       : seek_writer_submit(writer);
	return seek_writer_report(writer, code, err);
}

uint64_t sf_seek_writer_offset(const sf_seek_writer *writer)
{
	return writer->content_bytes;
}

sf_err sf_seek_writer_finish(sf_seek_writer *writer, uint64_t *compressed_bytes,
			     uint32_t *frame_count, sf_error *err)
{
	unsigned char *table = NULL;
	size_t table_bytes;
	unsigned char *p;
	sf_err code = seek_writer_usable(writer);

	if (code != SF_OK)
		goto out;
	if (writer->holding)
		code = seek_writer_release(writer);
	if (code == SF_OK)
		code = seek_writer_submit(writer);
	while (code == SF_OK && writer->used > 0)
		code = seek_writer_flush_head(writer);
	if (code != SF_OK)
		goto out;

	table_bytes = SEEK_SKIPPABLE_HEADER_BYTES +
		      (size_t)writer->entry_count * SEEK_ENTRY_BYTES +
		      SF_SEEK_FOOTER_BYTES;
	table = malloc(table_bytes);
	if (!table) {
		code = sf_error_set(&writer->failure, SF_ERR_NOMEM,
				    "'%s': out of memory for the seek table",
				    writer->path);
		goto out;
	}
	p = table;
	put_le32(p, SF_SEEK_SKIPPABLE_MAGIC);
	put_le32(p + 4, (uint32_t)(table_bytes - SEEK_SKIPPABLE_HEADER_BYTES));
	p += SEEK_SKIPPABLE_HEADER_BYTES;
	for (uint32_t i = 0; i < writer->entry_count; i++) {
		put_le32(p, writer->entries[i].compressed_size);
		put_le32(p + 4, writer->entries[i].decompressed_size);
		put_le32(p + 8, writer->entries[i].checksum);
		p += SEEK_ENTRY_BYTES;
	}
	put_le32(p, writer->entry_count);
	p[4] = SF_SEEK_CHECKSUM_FLAG;
	put_le32(p + 5, SF_SEEK_FOOTER_MAGIC);
	if (sf_write_all(writer->fd, table, table_bytes) != 0) {
		code = sf_error_io(&writer->failure, errno,
				   "'%s': byte %" PRIu64 ": cannot write the %zu-byte "
				   "seek table", writer->path,
				   writer->compressed_bytes, table_bytes);
		goto out;
	}
	writer->compressed_bytes += table_bytes;
	writer->finished = 1;
	if (compressed_bytes)
		*compressed_bytes = writer->compressed_bytes;
	if (frame_count)
		*frame_count = writer->entry_count;
out:
	free(table);
	return seek_writer_report(writer, code, err);
}

void sf_seek_writer_dictionary(const sf_seek_writer *writer, sf_seek_dict_info *info,
			       const void **dict, size_t *dict_len)
{
	*info = writer->dict_info;
	if (dict)
		*dict = info->used ? writer->dict : NULL;
	if (dict_len)
		*dict_len = info->used ? info->dict_bytes : 0;
}

void sf_seek_writer_free(sf_seek_writer *writer)
{
	if (!writer)
		return;
	free(writer->held);
	free(writer->cuts);
	free(writer->dict);
	if (writer->sync_ready) {
		pthread_mutex_lock(&writer->lock);
		writer->stop = 1;
		pthread_cond_broadcast(&writer->work_cond);
		pthread_mutex_unlock(&writer->lock);
	}
	if (writer->workers) {
		for (int i = 0; i < writer->options.threads; i++) {
			if (writer->workers[i].started)
				pthread_join(writer->workers[i].thread, NULL);
			ZSTD_freeCCtx(writer->workers[i].cctx);
		}
	}
	if (writer->sync_ready) {
		pthread_cond_destroy(&writer->done_cond);
		pthread_cond_destroy(&writer->work_cond);
		pthread_mutex_destroy(&writer->lock);
	}
	if (writer->jobs) {
		for (unsigned i = 0; i < writer->job_count; i++) {
			free(writer->jobs[i].content);
			free(writer->jobs[i].output);
		}
	}
	free(writer->workers);
	free(writer->jobs);
	free(writer->entries);
	free(writer->path);
	free(writer);
}

/* ---- seek table ---------------------------------------------------- */

/* Check the 9-byte footer at the end of a shard and size the table. */
static sf_err seek_footer_parse(const unsigned char *footer, uint64_t shard_size,
				const char *path, uint32_t *frame_count,
				uint64_t *table_bytes, sf_error *err)
{
	uint64_t footer_offset = shard_size - SF_SEEK_FOOTER_BYTES;
	uint32_t magic = get_le32(footer + 5);
	unsigned descriptor = footer[4];
	uint32_t count = get_le32(footer);
	uint64_t needed;

	if (magic != SF_SEEK_FOOTER_MAGIC)
		return sf_error_set(err, SF_ERR_CORRUPT,
				    "'%s': byte %" PRIu64 ": seekable magic 0x%08X "
				    "expected, found 0x%08" PRIX32,
				    path, footer_offset + 5, SF_SEEK_FOOTER_MAGIC, magic);
	if (descriptor & SEEK_RESERVED_BITS)
		return sf_error_set(err, SF_ERR_CORRUPT,
				    "'%s': byte %" PRIu64 ": seek table descriptor "
				    "0x%02X has reserved bits set, expected them zero",
				    path, footer_offset + 4, descriptor);
	if (!(descriptor & SF_SEEK_CHECKSUM_FLAG))
		return sf_error_set(err, SF_ERR_UNSUPPORTED,
				    "'%s': byte %" PRIu64 ": seek table without "
				    "checksums (descriptor 0x%02X), expected the "
				    "checksum flag", path, footer_offset + 4, descriptor);
	if (count > SF_SEEK_MAX_FRAMES)
		return sf_error_set(err, SF_ERR_LIMIT,
				    "'%s': byte %" PRIu64 ": seek table lists %" PRIu32
				    " frames, at most %u expected",
				    path, footer_offset, count, SF_SEEK_MAX_FRAMES);
	needed = SEEK_SKIPPABLE_HEADER_BYTES + (uint64_t)count * SEEK_ENTRY_BYTES +
		 SF_SEEK_FOOTER_BYTES;
	if (needed > shard_size)
		return sf_error_set(err, SF_ERR_CORRUPT,
				    "'%s': byte %" PRIu64 ": seek table of %" PRIu32
				    " frames needs %" PRIu64 " bytes, the shard has "
				    "only %" PRIu64,
				    path, footer_offset, count, needed, shard_size);
	*frame_count = count;
	*table_bytes = needed;
	return SF_OK;
}

sf_err sf_seek_table_parse(const unsigned char *tail, size_t len,
			   uint64_t shard_size, const char *path,
			   sf_seek_frame **frames, uint32_t *frame_count,
			   sf_error *err)
{
	sf_seek_frame *list = NULL;
	const unsigned char *table;
	uint64_t table_bytes, table_offset, data_bytes;
	uint64_t compressed_offset = 0, decompressed_offset = 0;
	uint32_t count = 0, magic, skippable_size;
	sf_err code;

	*frames = NULL;
	*frame_count = 0;
	if (!path)
		path = "(unnamed)";
	if (len > shard_size)
		return sf_error_set(err, SF_ERR_INVALID,
				    "'%s': %zu-byte tail of a %" PRIu64 "-byte shard",
				    path, len, shard_size);
	if (len < SF_SEEK_FOOTER_BYTES)
		return sf_error_set(err, SF_ERR_CORRUPT,
				    "'%s': byte %" PRIu64 ": shard ends before its "
				    "%u-byte seek table footer",
				    path, shard_size, SF_SEEK_FOOTER_BYTES);
	code = seek_footer_parse(tail + len - SF_SEEK_FOOTER_BYTES, shard_size,
				 path, &count, &table_bytes, err);
	if (code != SF_OK)
		return code;
	table_offset = shard_size - table_bytes;
	if (table_bytes > len)
		return sf_error_set(err, SF_ERR_CORRUPT,
				    "'%s': byte %" PRIu64 ": seek table of %" PRIu64
				    " bytes expected, only %zu bytes given",
				    path, table_offset, table_bytes, len);
	table = tail + (len - table_bytes);
	magic = get_le32(table);
	if (magic != SF_SEEK_SKIPPABLE_MAGIC)
		return sf_error_set(err, SF_ERR_CORRUPT,
				    "'%s': byte %" PRIu64 ": skippable frame magic "
				    "0x%08X expected for a seek table of %" PRIu32
				    " frames, found 0x%08" PRIX32,
				    path, table_offset, SF_SEEK_SKIPPABLE_MAGIC, count,
				    magic);
	skippable_size = get_le32(table + 4);
	if (skippable_size != table_bytes - SEEK_SKIPPABLE_HEADER_BYTES)
		return sf_error_set(err, SF_ERR_CORRUPT,
				    "'%s': byte %" PRIu64 ": seek table frame size %"
				    PRIu32 ", expected %" PRIu64 " for %" PRIu32 " frames",
				    path, table_offset + 4, skippable_size,
				    table_bytes - SEEK_SKIPPABLE_HEADER_BYTES, count);

	list = calloc(count ? count : 1, sizeof(*list));
	if (!list)
		return sf_error_set(err, SF_ERR_NOMEM,
				    "'%s': out of memory for %" PRIu32 " frames",
				    path, count);
	data_bytes = table_offset;
	for (uint32_t i = 0; i < count; i++) {
		const unsigned char *entry = table + SEEK_SKIPPABLE_HEADER_BYTES +
					     (size_t)i * SEEK_ENTRY_BYTES;
		uint64_t entry_offset = table_offset + SEEK_SKIPPABLE_HEADER_BYTES +
					(uint64_t)i * SEEK_ENTRY_BYTES;
		uint32_t compressed_size = get_le32(entry);
		uint32_t decompressed_size = get_le32(entry + 4);

		if (decompressed_size == 0 ||
		    decompressed_size > SF_SEEK_MAX_FRAME_BYTES) {
			code = sf_error_set(err, decompressed_size ? SF_ERR_LIMIT
								   : SF_ERR_CORRUPT,
					    "'%s': byte %" PRIu64 ": frame %" PRIu32
					    " holds %" PRIu32 " bytes, expected 1..%u",
					    path, entry_offset + 4, i, decompressed_size,
					    SF_SEEK_MAX_FRAME_BYTES);
			goto fail;
		}
		if (compressed_size == 0 ||
		    compressed_size > seek_frame_bound(decompressed_size)) {
			code = sf_error_set(err, SF_ERR_CORRUPT,
					    "'%s': byte %" PRIu64 ": frame %" PRIu32
					    " has %" PRIu32 " compressed bytes, expected "
					    "1..%zu for %" PRIu32 " bytes of content",
					    path, entry_offset, i, compressed_size,
					    seek_frame_bound(decompressed_size),
					    decompressed_size);
			goto fail;
		}
		if (compressed_size > data_bytes - compressed_offset) {
			code = sf_error_set(err, SF_ERR_CORRUPT,
					    "'%s': byte %" PRIu64 ": frame %" PRIu32
					    " (%" PRIu32 " bytes at byte %" PRIu64
					    ") runs past the seek table at byte %" PRIu64,
					    path, entry_offset, i, compressed_size,
					    compressed_offset, table_offset);
			goto fail;
		}
		list[i].compressed_offset = compressed_offset;
		list[i].compressed_size = compressed_size;
		list[i].decompressed_offset = decompressed_offset;
		list[i].decompressed_size = decompressed_size;
		list[i].checksum = get_le32(entry + 8);
		compressed_offset += compressed_size;
		decompressed_offset += decompressed_size;
	}
	if (compressed_offset != data_bytes) {
		code = sf_error_set(err, SF_ERR_CORRUPT,
				    "'%s': byte %" PRIu64 ": frames of the seek table "
				    "cover %" PRIu64 " bytes, expected %" PRIu64
				    " (everything before the table)",
				    path, table_offset, compressed_offset, data_bytes);
		goto fail;
	}
	*frames = list;
	*frame_count = count;
	return SF_OK;
fail:
	free(list);
	return code;
}

/* ---- reader -------------------------------------------------------- */

struct sf_seek_reader {
	int fd;
	char *path;
	sf_seek_frame *frames;
	uint32_t frame_count;
	uint64_t content_size;
	ZSTD_DDict *ddict;        /* the shard's dictionary, or NULL */
	uint32_t dict_id;
};

sf_err sf_seek_reader_open(sf_seek_reader **out, int fd, const char *path,
			   sf_error *err)
{
	sf_seek_reader *reader = NULL;
	unsigned char footer[SF_SEEK_FOOTER_BYTES];
	unsigned char *table = NULL;
	uint64_t shard_size, table_bytes;
	uint32_t count;
	struct stat st;
	ssize_t got;
	sf_err code;

	*out = NULL;
	if (!path)
		path = "(unnamed)";
	if (fstat(fd, &st) != 0)
		return sf_error_io(err, errno, "'%s': cannot stat", path);
	if (!S_ISREG(st.st_mode))
		return sf_error_set(err, SF_ERR_CORRUPT, "'%s': not a regular file, expected "
				    "a shard", path);
	shard_size = (uint64_t)st.st_size;
	if (shard_size < SF_SEEK_FOOTER_BYTES)
		return sf_error_set(err, SF_ERR_CORRUPT,
				    "'%s': byte %" PRIu64 ": shard ends before its "
				    "%u-byte seek table footer",
				    path, shard_size, SF_SEEK_FOOTER_BYTES);
	got = sf_pread_full(fd, footer, sizeof(footer),
			    shard_size - SF_SEEK_FOOTER_BYTES);
	if (got < 0)
		return sf_error_io(err, errno, "'%s': byte %" PRIu64
				   ": cannot read the seek table footer", path,
				   shard_size - SF_SEEK_FOOTER_BYTES);
	if (got != (ssize_t)sizeof(footer))
		return sf_error_set(err, SF_ERR_CORRUPT,
				    "'%s': byte %" PRIu64 ": shard shrank while "
				    "reading its seek table footer", path,
				    shard_size - SF_SEEK_FOOTER_BYTES + (uint64_t)got);
	code = seek_footer_parse(footer, shard_size, path, &count, &table_bytes, err);
	if (code != SF_OK)
		return code;

	reader = calloc(1, sizeof(*reader));
	table = malloc((size_t)table_bytes);
	if (!reader || !table) {
		code = sf_error_set(err, SF_ERR_NOMEM,
				    "'%s': out of memory for a seek table of %" PRIu32
				    " frames", path, count);
		goto fail;
	}
	reader->fd = fd;
	reader->path = sf_strdup(path);
	if (!reader->path) {
		code = sf_error_set(err, SF_ERR_NOMEM, "'%s': out of memory", path);
		goto fail;
	}
	got = sf_pread_full(fd, table, (size_t)table_bytes, shard_size - table_bytes);
	if (got < 0) {
		code = sf_error_io(err, errno, "'%s': byte %" PRIu64
				   ": cannot read the %" PRIu64 "-byte seek table",
				   path, shard_size - table_bytes, table_bytes);
		goto fail;
	}
	if ((uint64_t)got != table_bytes) {
		code = sf_error_set(err, SF_ERR_CORRUPT,
				    "'%s': byte %" PRIu64 ": shard shrank while "
				    "reading its seek table", path,
				    shard_size - table_bytes + (uint64_t)got);
		goto fail;
	}
	code = sf_seek_table_parse(table, (size_t)table_bytes, shard_size, path,
				   &reader->frames, &reader->frame_count, err);
	if (code != SF_OK)
		goto fail;
	if (reader->frame_count > 0) {
		const sf_seek_frame *last = &reader->frames[reader->frame_count - 1];

		reader->content_size = last->decompressed_offset + last->decompressed_size;
	}
	free(table);
	*out = reader;
	return SF_OK;
fail:
	free(table);
	sf_seek_reader_free(reader);
	return code;
}

sf_err sf_seek_reader_set_dictionary(sf_seek_reader *reader, const void *dict,
				     size_t len, const char *name, sf_error *err)
{
	uint32_t id = ZSTD_getDictID_fromDict(dict, len);

	if (!name)
		name = "(unnamed)";
	if (reader->ddict)
		return sf_error_set(err, SF_ERR_INVALID,
				    "'%s': the shard already has a dictionary", reader->path);
	if (id == 0)
		return sf_error_set(err, SF_ERR_CORRUPT,
				    "'%s': not a zstd dictionary (%zu bytes), expected one "
				    "for shard '%s'", name, len, reader->path);
	reader->ddict = ZSTD_createDDict(dict, len);
	if (!reader->ddict)
		return sf_error_set(err, SF_ERR_CORRUPT,
				    "'%s': zstd cannot load this %zu-byte dictionary "
				    "(ID %" PRIu32 ")", name, len, id);
	reader->dict_id = id;
	return SF_OK;
}

uint32_t sf_seek_reader_frame_count(const sf_seek_reader *reader)
{
	return reader->frame_count;
}

uint64_t sf_seek_reader_content_size(const sf_seek_reader *reader)
{
	return reader->content_size;
}

void sf_seek_reader_frame(const sf_seek_reader *reader, uint32_t index,
			  sf_seek_frame *frame)
{
	if (index < reader->frame_count)
		*frame = reader->frames[index];
	else
		memset(frame, 0, sizeof(*frame));
}

uint32_t sf_seek_reader_frame_at(const sf_seek_reader *reader, uint64_t offset)
{
	uint32_t low = 0, high = reader->frame_count;

	if (offset >= reader->content_size)
		return reader->frame_count;
	/* Invariant: frames[low] starts at or before offset, frames[high]
	   (when it exists) after it. */
	while (high - low > 1) {
		uint32_t middle = low + (high - low) / 2;

		if (reader->frames[middle].decompressed_offset <= offset)
			low = middle;
		else
			high = middle;
	}
	return low;
}

/*
 * Each thread that reads frames keeps one decompression context and one
 * buffer for compressed bytes, freed by the key's destructor at thread
 * exit, so concurrent FUSE workers never share or reallocate them.
 */
struct seek_thread_state {
	ZSTD_DCtx *dctx;
	unsigned char *buffer;
	size_t capacity;
};

static pthread_key_t seek_thread_key;
static pthread_once_t seek_thread_once = PTHREAD_ONCE_INIT;
static int seek_thread_key_ready;

static void seek_thread_state_free(void *arg)
{
	struct seek_thread_state *state = arg;

	if (!state)
		return;
	ZSTD_freeDCtx(state->dctx);
	free(state->buffer);
	free(state);
}

static void seek_thread_key_create(void)
{
	seek_thread_key_ready =
		pthread_key_create(&seek_thread_key, seek_thread_state_free) == 0;
}

static struct seek_thread_state *seek_thread_state_get(size_t capacity)
{
	struct seek_thread_state *state;

	pthread_once(&seek_thread_once, seek_thread_key_create);
	if (!seek_thread_key_ready)
		return NULL;
	state = pthread_getspecific(seek_thread_key);
	if (!state) {
		state = calloc(1, sizeof(*state));
		if (!state)
			return NULL;
		state->dctx = ZSTD_createDCtx();
		if (!state->dctx || pthread_setspecific(seek_thread_key, state) != 0) {
			seek_thread_state_free(state);
			return NULL;
		}
	}
	if (state->capacity < capacity) {
		unsigned char *grown = realloc(state->buffer, capacity);

		if (!grown)
			return NULL;
		state->buffer = grown;
		state->capacity = capacity;
	}
	return state;
}

sf_err sf_seek_reader_read_frame(const sf_seek_reader *reader, uint32_t index,
				 void *dst, size_t capacity, sf_error *err)
{
	const sf_seek_frame *frame;
	struct seek_thread_state *state;
	ZSTD_frameHeader header;
	unsigned char *src;
	size_t size, header_left;
	uint32_t checksum;
	ssize_t got;

	if (index >= reader->frame_count)
		return sf_error_set(err, SF_ERR_INVALID,
				    "'%s': frame %" PRIu32 " requested, the shard has %"
				    PRIu32 " frames", reader->path, index,
				    reader->frame_count);
	frame = &reader->frames[index];
	if (capacity < frame->decompressed_size)
		return sf_error_set(err, SF_ERR_INVALID,
				    "'%s': frame %" PRIu32 " holds %" PRIu32
				    " bytes, buffer has room for %zu",
				    reader->path, index, frame->decompressed_size,
				    capacity);
	state = seek_thread_state_get(frame->compressed_size);
	if (!state)
		return sf_error_set(err, SF_ERR_NOMEM,
				    "'%s': frame %" PRIu32 ": out of memory for "
				    "decompression", reader->path, index);
	src = state->buffer;

	got = sf_pread_full(reader->fd, src, frame->compressed_size,
			    frame->compressed_offset);
	if (got < 0)
		return sf_error_io(err, errno, "'%s': frame %" PRIu32 " (byte %" PRIu64
				   "): cannot read %" PRIu32 " bytes",
				   reader->path, index, frame->compressed_offset,
				   frame->compressed_size);
	if ((uint64_t)got != frame->compressed_size)
		return sf_error_set(err, SF_ERR_CORRUPT,
				    "'%s': frame %" PRIu32 " (byte %" PRIu64
				    "): shard ends after %zd of the frame's %" PRIu32
				    " bytes", reader->path, index,
				    frame->compressed_offset, got,
				    frame->compressed_size);

	header_left = ZSTD_getFrameHeader(&header, src, frame->compressed_size);
	if (ZSTD_isError(header_left))
		return sf_error_set(err, SF_ERR_CORRUPT,
				    "'%s': frame %" PRIu32 " (byte %" PRIu64
				    "): zstd frame header expected: %s", reader->path,
				    index, frame->compressed_offset,
				    ZSTD_getErrorName(header_left));
	if (header_left != 0 || header.frameType != ZSTD_frame)
		return sf_error_set(err, SF_ERR_CORRUPT,
				    "'%s': frame %" PRIu32 " (byte %" PRIu64
				    "): zstd frame header expected, found %s",
				    reader->path, index, frame->compressed_offset,
				    header_left != 0 ? "a truncated one"
						     : "a skippable frame");
	if (!header.checksumFlag)
		return sf_error_set(err, SF_ERR_CORRUPT,
				    "'%s': frame %" PRIu32 " (byte %" PRIu64
				    "): zstd frame without content checksum, expected "
				    "one", reader->path, index, frame->compressed_offset);
	if (header.dictID != 0 && !reader->ddict)
		return sf_error_set(err, SF_ERR_CORRUPT,
				    "'%s': frame %" PRIu32 " (byte %" PRIu64
				    "): zstd frame needs dictionary %u, expected none",
				    reader->path, index, frame->compressed_offset,
				    header.dictID);
	if (header.dictID != 0 && header.dictID != reader->dict_id)
		return sf_error_set(err, SF_ERR_CORRUPT,
				    "'%s': frame %" PRIu32 " (byte %" PRIu64
				    "): zstd frame needs dictionary %u, the shard's is %"
				    PRIu32, reader->path, index, frame->compressed_offset,
				    header.dictID, reader->dict_id);
	if (header.frameContentSize != frame->decompressed_size)
		return sf_error_set(err, SF_ERR_CORRUPT,
				    "'%s': frame %" PRIu32 " (byte %" PRIu64
				    "): zstd frame content size %s%llu, expected %"
				    PRIu32 " from the seek table",
				    reader->path, index, frame->compressed_offset,
				    header.frameContentSize == ZSTD_CONTENTSIZE_UNKNOWN
					    ? "unknown, "
					    : "",
				    header.frameContentSize == ZSTD_CONTENTSIZE_UNKNOWN
					    ? 0ull
					    : header.frameContentSize,
				    frame->decompressed_size);

	size = ZSTD_findFrameCompressedSize(src, frame->compressed_size);
	if (ZSTD_isError(size))
		return sf_error_set(err, SF_ERR_CORRUPT,
				    "'%s': frame %" PRIu32 " (byte %" PRIu64
				    "): zstd frame of %" PRIu32 " bytes expected: %s",
				    reader->path, index, frame->compressed_offset,
				    frame->compressed_size, ZSTD_getErrorName(size));
	if (size != frame->compressed_size)
		return sf_error_set(err, SF_ERR_CORRUPT,
				    "'%s': frame %" PRIu32 " (byte %" PRIu64
				    "): zstd frame of %" PRIu32 " bytes expected, "
				    "found one of %zu", reader->path, index,
				    frame->compressed_offset, frame->compressed_size, size);

	size = reader->ddict
		       ? ZSTD_decompress_usingDDict(state->dctx, dst,
						    frame->decompressed_size, src,
						    frame->compressed_size, reader->ddict)
		       : ZSTD_decompressDCtx(state->dctx, dst, frame->decompressed_size,
					     src, frame->compressed_size);
	/* zstd has already restored the whole content when only its checksum
	   disagrees, so the message can show both values. */
	if (ZSTD_isError(size) && ZSTD_getErrorCode(size) == ZSTD_error_checksum_wrong)
		return sf_error_set(err, SF_ERR_CORRUPT,
				    "'%s': frame %" PRIu32 " (byte %" PRIu64
				    "): zstd content checksum mismatch, expected 0x%08"
				    PRIx32 " got 0x%08" PRIx32, reader->path, index,
				    frame->compressed_offset,
				    get_le32(src + frame->compressed_size - 4),
				    seek_checksum(dst, frame->decompressed_size));
	if (ZSTD_isError(size))
		return sf_error_set(err, SF_ERR_CORRUPT,
				    "'%s': frame %" PRIu32 " (byte %" PRIu64
				    "): zstd decompression failed: %s",
				    reader->path, index, frame->compressed_offset,
				    ZSTD_getErrorName(size));
	if (size != frame->decompressed_size)
		return sf_error_set(err, SF_ERR_CORRUPT,
				    "'%s': frame %" PRIu32 " (byte %" PRIu64
				    "): decompressed to %zu bytes, expected %" PRIu32,
				    reader->path, index, frame->compressed_offset, size,
				    frame->decompressed_size);
	/* zstd has checked the content against the frame's own checksum (the
	   low 32 bits of its XXH64, the same value the seek table holds), so
	   comparing the two stored values checks the table without hashing
	   the content a second time. */
	checksum = get_le32(src + frame->compressed_size - 4);
	if (checksum != frame->checksum)
		return sf_error_set(err, SF_ERR_CORRUPT,
				    "'%s': frame %" PRIu32 " (byte %" PRIu64
				    "): checksum mismatch, expected 0x%08" PRIx32
				    " got 0x%08" PRIx32, reader->path, index,
				    frame->compressed_offset, frame->checksum, checksum);
	return SF_OK;
}

void sf_seek_reader_free(sf_seek_reader *reader)
{
	if (!reader)
		return;
	ZSTD_freeDDict(reader->ddict);
	free(reader->frames);
	free(reader->path);
	free(reader);
}
