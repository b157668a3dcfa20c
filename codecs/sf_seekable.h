/*
 * sf_seekable.h - reader and writer for the zstd seekable format.
 *
 * A shard is a sequence of independent zstd frames followed by one
 * skippable frame holding the seek table (zstd contrib/seekable_format):
 *
 *   Skippable frame magic 0x184D2A5E (u32 LE), frame size (u32 LE),
 *   entries: compressed size (u32 LE), decompressed size (u32 LE),
 *            checksum (u32 LE, low 32 bits of XXH64 of the decompressed
 *            frame, present when the descriptor's bit 7 is set),
 *   footer:  number of frames (u32 LE), descriptor (u8), seekable magic
 *            0x8F92EAB1 (u32 LE).
 *
 * Because every frame is a plain zstd frame, `zstd -d` decompresses a whole
 * shard and skips the seek table. stepfs always writes the checksum flag
 * and also turns on each zstd frame's own content checksum.
 *
 * Frames whose compressed form would not be smaller than their content are
 * written as zstd frames of raw blocks (stored, not compressed).
 *
 * Thread safety: a writer is used by one thread (it runs its own
 * compression workers); a reader is immutable after open and
 * sf_seek_reader_read_frame() may be called from many threads at once.
 */
#ifndef SF_SEEKABLE_H
#define SF_SEEKABLE_H

#include <stddef.h>
#include <stdint.h>

#include "sf_error.h"

#define SF_SEEK_SKIPPABLE_MAGIC 0x184D2A5Eu
#define SF_SEEK_FOOTER_MAGIC 0x8F92EAB1u
#define SF_SEEK_FOOTER_BYTES 9u
#define SF_SEEK_CHECKSUM_FLAG 0x80u
/* Largest decompressed frame a reader accepts (and a writer produces). */
#define SF_SEEK_MAX_FRAME_BYTES (16u * 1024u * 1024u)
/* Largest number of frames a reader accepts in one shard. */
#define SF_SEEK_MAX_FRAMES (1u << 24)

/* ---- writer ---------------------------------------------------------- */

typedef struct sf_seek_writer sf_seek_writer;

/*
 * Dictionary modes. With AUTO or ALWAYS the writer holds back the first
 * SF_SEEK_DICT_SAMPLE_BYTES of content (or all of a smaller shard), trains
 * a zstd dictionary of 16..112 KiB (about 1/100 of the sample) on a spread
 * of at most SF_SEEK_DICT_TRAIN_BYTES of it, and
 * compresses a spread of up to SF_SEEK_DICT_PROBE_BYTES of those frames
 * with and without it. ALWAYS uses any dictionary it could train; AUTO
 * uses it only when the saving measured on the held content, scaled to
 * the shard's expected size when that is known and larger, exceeds
 * SF_SEEK_DICT_MARGIN_PERCENT % of the dictionary's own size. Every frame of the
 * shard is then compressed with the dictionary (stored frames excepted).
 * Memory stays bounded by the sample whatever the shard's size.
 */
enum sf_seek_dictionary {
	SF_SEEK_DICT_NEVER = 0,
	SF_SEEK_DICT_AUTO,
	SF_SEEK_DICT_ALWAYS
};

#define SF_SEEK_DICT_SAMPLE_BYTES (8u * 1024u * 1024u)
#define SF_SEEK_DICT_PROBE_BYTES (1024u * 1024u)
/* The trainer reads a spread of at most this much of the sample: three
   times faster than all 8 MiB, and within 0.3% of its dictionary's
   compression on the benchmark data (docs/BENCHMARKS.md). */
#define SF_SEEK_DICT_TRAIN_BYTES (2u * 1024u * 1024u)
#define SF_SEEK_DICT_MIN_BYTES (16u * 1024u)
#define SF_SEEK_DICT_MAX_BYTES (112u * 1024u)
#define SF_SEEK_DICT_MARGIN_PERCENT 150

typedef struct sf_seek_writer_options {
	int level;            /* zstd level, 1..22 (negative fast levels allowed) */
	size_t frame_bytes;   /* decompressed bytes per frame, 4 KiB..16 MiB */
	int threads;          /* compression workers, >= 1 */
	int long_distance;    /* nonzero: enable zstd long-distance matching */
	int dictionary;       /* enum sf_seek_dictionary; 0 (NEVER) by default */
	uint64_t expected_bytes; /* content the shard is expected to get (0:
				    unknown); AUTO weighs a dictionary's saving
				    over this much once the sample is full */
} sf_seek_writer_options;

/* What the writer decided about a dictionary, and the figures it measured. */
typedef struct sf_seek_dict_info {
	int used;              /* frames reference the dictionary */
	const char *reason;    /* static text: why it is (not) used */
	size_t dict_bytes;     /* size of the trained dictionary (0: none) */
	uint32_t dict_id;      /* its zstd dictionary ID */
	uint64_t held_bytes;   /* content it was trained on */
	uint64_t probe_bytes;  /* content compressed both ways */
	uint64_t probe_plain;  /* compressed size of the probe without it */
	uint64_t probe_dict;   /* compressed size of the probe with it */
} sf_seek_dict_info;

/*
 * Start a shard on fd, which must be open for writing and positioned at
 * the start of an empty file. path is only used in error messages. The
 * writer does not own fd and never closes it.
 */
sf_err sf_seek_writer_create(sf_seek_writer **out, int fd, const char *path,
			     const sf_seek_writer_options *options,
			     sf_error *err);

/* Append len bytes of content; frames are cut every frame_bytes. */
sf_err sf_seek_writer_write(sf_seek_writer *writer, const void *data,
			    size_t len, sf_error *err);

/* End the current frame now, if it holds any byte (e.g. at a file edge). */
sf_err sf_seek_writer_end_frame(sf_seek_writer *writer, sf_error *err);

/* Decompressed bytes written so far: the offset the next byte will have. */
uint64_t sf_seek_writer_offset(const sf_seek_writer *writer);

/*
 * Flush every frame and write the seek table. After success the shard is
 * complete (the caller fsyncs and closes fd). The counters report totals.
 */
sf_err sf_seek_writer_finish(sf_seek_writer *writer, uint64_t *compressed_bytes,
			     uint32_t *frame_count, sf_error *err);

/*
 * After sf_seek_writer_finish(): the dictionary decision. When info->used,
 * *dict and *dict_len (either may be NULL) give the dictionary's bytes,
 * owned by the writer until sf_seek_writer_free(); the caller stores them
 * beside the shard, since frames cannot be read without them.
 */
void sf_seek_writer_dictionary(const sf_seek_writer *writer, sf_seek_dict_info *info,
			       const void **dict, size_t *dict_len);

/* Stop workers and free; safe on NULL and on an unfinished writer. */
void sf_seek_writer_free(sf_seek_writer *writer);

/* ---- reader ---------------------------------------------------------- */

typedef struct sf_seek_reader sf_seek_reader;

typedef struct sf_seek_frame {
	uint64_t compressed_offset;   /* byte offset of the frame in the shard */
	uint32_t compressed_size;
	uint64_t decompressed_offset; /* offset of its first byte in the content */
	uint32_t decompressed_size;
	uint32_t checksum;            /* low 32 bits of XXH64 of the content */
} sf_seek_frame;

/*
 * Open a shard: read and validate the seek table (footer magic, entry
 * count, sizes adding up to the file size, limits). fd is borrowed and must
 * stay open until sf_seek_reader_free(); path is copied for messages.
 */
sf_err sf_seek_reader_open(sf_seek_reader **out, int fd, const char *path,
			   sf_error *err);

/*
 * Give the reader the shard's dictionary (copied into a ZSTD_DDict shared
 * by all threads). Call once, before any read. Fails with SF_ERR_CORRUPT
 * when dict is not a zstd dictionary; name is used in that message.
 * Frames that name a dictionary ID other than this one's are refused.
 */
sf_err sf_seek_reader_set_dictionary(sf_seek_reader *reader, const void *dict,
				     size_t len, const char *name, sf_error *err);

uint32_t sf_seek_reader_frame_count(const sf_seek_reader *reader);
uint64_t sf_seek_reader_content_size(const sf_seek_reader *reader);

/* Frame i's position and sizes; i must be < frame_count. */
void sf_seek_reader_frame(const sf_seek_reader *reader, uint32_t index,
			  sf_seek_frame *frame);

/* Index of the frame holding content offset (offset < content size). */
uint32_t sf_seek_reader_frame_at(const sf_seek_reader *reader, uint64_t offset);

/*
 * Decompress frame i into dst (capacity >= its decompressed size) with
 * pread. Checks the zstd frame, its content checksum, the decompressed size
 * and the seek table checksum; on mismatch returns SF_ERR_CORRUPT naming the
 * shard path, frame index and byte offset. Thread-safe.
 */
sf_err sf_seek_reader_read_frame(const sf_seek_reader *reader, uint32_t index,
				 void *dst, size_t capacity, sf_error *err);

void sf_seek_reader_free(sf_seek_reader *reader);

/*
 * Parse a seek table held in memory (the last `len` bytes of a shard whose
 * total size is shard_size). Used by the reader and by the fuzz target.
 * On success *frames is a malloc'd array the caller frees.
 */
sf_err sf_seek_table_parse(const unsigned char *tail, size_t len,
			   uint64_t shard_size, const char *path,
			   sf_seek_frame **frames, uint32_t *frame_count,
			   sf_error *err);

#endif
