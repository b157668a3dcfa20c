/*
 * sf_index.c - encoding and compressing 2.0 index documents.
 */
#include "sf_index.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "sf_format.h"
#include "sf_store.h"
#include "sf_util.h"
#include "sf_xxhash.h"

typedef struct tree_node {
	char *name;               /* raw bytes, NUL-terminated */
	const sf_index_entry *entry; /* borrowed; NULL for a folder with no entry */
	size_t parent;            /* node number; node 0 is the index's folder */
	size_t *children;
	size_t child_count, child_capacity;
} tree_node;

typedef struct tree {
	tree_node *nodes;
	size_t count, capacity;
	size_t *slots;            /* node number + 1 by (parent, name); 0 is empty */
	size_t slot_capacity;
} tree;

typedef struct encoder {
	int keep_hashes;
	int64_t last_sec;         /* running time, nanosecond differences */
	uint32_t last_nsec;
	uint64_t cursor;          /* end of the previous segment */
} encoder;

static size_t slot_of(const tree *t, size_t parent, const char *name)
{
	return (size_t)(sf_xxh64(name, strlen(name), (uint64_t)parent) & (t->slot_capacity - 1));
}

static size_t find_child(const tree *t, size_t parent, const char *name)
{
	size_t slot = slot_of(t, parent, name);

	while (t->slots[slot]) {
		const tree_node *n = &t->nodes[t->slots[slot] - 1];

		if (n->parent == parent && strcmp(n->name, name) == 0)
			return t->slots[slot] - 1;
		slot = (slot + 1) & (t->slot_capacity - 1);
	}
	return 0;
}

/* New node below parent; 0 when out of memory. */
static size_t add_node(tree *t, size_t parent, const char *name, size_t len)
{
	tree_node *n, *p;
	size_t id, slot;

	if (t->count == t->capacity) {
		size_t cap = t->capacity * 2;
		tree_node *grown = realloc(t->nodes, cap * sizeof(*grown));

		if (!grown)
			return 0;
		t->nodes = grown;
		t->capacity = cap;
	}
	if ((t->count + 1) * 2 > t->slot_capacity) {
		size_t cap = t->slot_capacity * 2, i, *old = t->slots, old_cap = t->slot_capacity;

		t->slots = calloc(cap, sizeof(*t->slots));
		if (!t->slots) {
			t->slots = old;
			return 0;
		}
		t->slot_capacity = cap;
		for (i = 0; i < old_cap; i++) {
			if (old[i]) {
				slot = slot_of(t, t->nodes[old[i] - 1].parent, t->nodes[old[i] - 1].name);
				while (t->slots[slot])
					slot = (slot + 1) & (cap - 1);
				t->slots[slot] = old[i];
			}
		}
		free(old);
	}
	id = t->count;
	n = &t->nodes[id];
	memset(n, 0, sizeof(*n));
	n->name = sf_strndup(name, len);
	if (!n->name)
		return 0;
	n->parent = parent;
	p = &t->nodes[parent];
	if (p->child_count == p->child_capacity) {
		size_t cap = p->child_capacity ? p->child_capacity * 2 : 4;
		size_t *grown = realloc(p->children, cap * sizeof(*grown));

		if (!grown) {
			free(n->name);
			return 0;
		}
		p->children = grown;
		p->child_capacity = cap;
	}
	p->children[p->child_count++] = id;
	t->count++;
	slot = slot_of(t, parent, n->name);
	while (t->slots[slot])
		slot = (slot + 1) & (t->slot_capacity - 1);
	t->slots[slot] = id + 1;
	return id;
}

static char *entry_bytes(json_t *entry, const char *key, const char *hex_key)
{
	json_t *text = json_object_get(entry, key);

	if (json_is_string(text))
		return sf_strdup(json_string_value(text));
	text = json_object_get(entry, hex_key);
	return json_is_string(text) ? sf_hex_decode(json_string_value(text)) : NULL;
}

/* Place one entry in the tree; 0 on a path that does not fit. */
static int place_entry(tree *t, const sf_index_entry *entry, const char **why)
{
	const char *p = entry->path;
	size_t dir = 0;

	if (!p) {
		*why = "an entry without a path";
		return 0;
	}
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p), child;
		char name[SF_MAX_NAME_BYTES + 1];

		if (len == 0 || len > SF_MAX_NAME_BYTES) {
			*why = "an entry with an empty or long path component";
			return 0;
		}
		memcpy(name, p, len);
		name[len] = '\0';
		child = find_child(t, dir, name);
		if (!slash) {
			if (child && t->nodes[child].entry) {
				*why = "an entry listed twice";
				return 0;
			}
			if (!child)
				child = add_node(t, dir, p, len);
			if (!child) {
				*why = "out of memory";
				return 0;
			}
			t->nodes[child].entry = entry;
			return 1;
		}
		if (!child)
			child = add_node(t, dir, p, len);
		if (!child) {
			*why = "out of memory";
			return 0;
		}
		dir = child;
		p = slash + 1;
	}
}

/* Digit runs compare as numbers, everything else byte by byte. */
static int natural_compare(const char *a, const char *b)
{
	while (*a && *b) {
		if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
			const char *x = a, *y = b;
			size_t lx, ly;
			int c;

			while (*x == '0')
				x++;
			while (*y == '0')
				y++;
			lx = strspn(x, "0123456789");
			ly = strspn(y, "0123456789");
			if (lx != ly)
				return lx < ly ? -1 : 1;
			c = memcmp(x, y, lx);
			if (c)
				return c;
			a = x + lx;
			b = y + ly;
			continue;
		}
		if (*a != *b)
			return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
		a++;
		b++;
	}
	return *a ? 1 : *b ? -1 : 0;
}

typedef struct named_child {
	const char *name;
	size_t id;
} named_child;

static int compare_children(const void *x, const void *y)
{
	const char *a = ((const named_child *)x)->name, *b = ((const named_child *)y)->name;
	int c = natural_compare(a, b);

	return c ? c : strcmp(a, b);
}

/* Order a folder's children naturally; 0 when out of memory. */
static int sort_children(tree *t, tree_node *n)
{
	named_child *order;
	size_t i;

	if (n->child_count < 2)
		return 1;
	order = malloc(n->child_count * sizeof(*order));
	if (!order)
		return 0;
	for (i = 0; i < n->child_count; i++) {
		order[i].name = t->nodes[n->children[i]].name;
		order[i].id = n->children[i];
	}
	qsort(order, n->child_count, sizeof(*order), compare_children);
	for (i = 0; i < n->child_count; i++)
		n->children[i] = order[i].id;
	free(order);
	return 1;
}

/* ---- the text, written directly (compact JSON, as jansson's
   JSON_COMPACT would print it) ---- */

typedef struct text_buf {
	char *data;
	size_t len, cap;
	int failed;
} text_buf;

static int tb_reserve(text_buf *b, size_t more)
{
	size_t cap;
	char *grown;

	if (b->failed)
		return 0;
	if (b->len + more + 1 <= b->cap)
		return 1;
	cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more + 1)
		cap *= 2;
	grown = realloc(b->data, cap);
	if (!grown) {
		b->failed = 1;
		return 0;
	}
	b->data = grown;
	b->cap = cap;
	return 1;
}

static void tb_put(text_buf *b, const char *s, size_t n)
{
	if (!tb_reserve(b, n))
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
}

static void tb_char(text_buf *b, char c)
{
	if (tb_reserve(b, 1))
		b->data[b->len++] = c;
}

/* value in decimal, as "%lld" writes it (the packer writes millions). */
static void tb_int(text_buf *b, long long value)
{
	char digits[24], *p = digits + sizeof(digits);
	unsigned long long v = value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;

	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	if (value < 0)
		*--p = '-';
	tb_put(b, p, (size_t)(digits + sizeof(digits) - p));
}

/* A JSON string of valid UTF-8: '"', '\\' and control bytes escaped. */
static void tb_string(text_buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	tb_char(b, '"');
	while (*p) {
		const unsigned char *run = p;

		while (*p && *p != '"' && *p != '\\' && *p >= 0x20)
			p++;
		tb_put(b, (const char *)run, (size_t)(p - run));
		if (!*p)
			break;
		switch (*p) {
		case '"': tb_put(b, "\\\"", 2); break;
		case '\\': tb_put(b, "\\\\", 2); break;
		case '\b': tb_put(b, "\\b", 2); break;
		case '\f': tb_put(b, "\\f", 2); break;
		case '\n': tb_put(b, "\\n", 2); break;
		case '\r': tb_put(b, "\\r", 2); break;
		case '\t': tb_put(b, "\\t", 2); break;
		default: {
			char esc[8];

			snprintf(esc, sizeof(esc), "\\u%04X", *p);
			tb_put(b, esc, 6);
		}
		}
		p++;
	}
	tb_char(b, '"');
}

/* A name: its string when it is UTF-8, else ["hex of its bytes"]. */
static void tb_name(text_buf *b, const char *bytes)
{
	char *hex;

	if (sf_utf8_valid(bytes, strlen(bytes))) {
		tb_string(b, bytes);
		return;
	}
	hex = sf_hex_encode(bytes, strlen(bytes));
	if (!hex) {
		b->failed = 1;
		return;
	}
	tb_char(b, '[');
	tb_string(b, hex);
	tb_char(b, ']');
	free(hex);
}

/* The time as the difference from the entry before, or [sec, nsec]
   when the difference does not fit in 62 bits. */
static void tb_mtime(text_buf *b, encoder *e, const sf_index_entry *entry)
{
	int64_t sec = entry->mtime_sec;
	uint32_t nsec = entry->mtime_nsec;
	__int128 delta;

	delta = ((__int128)sec - e->last_sec) * 1000000000 + ((__int128)nsec - e->last_nsec);
	e->last_sec = sec;
	e->last_nsec = nsec;
	if (delta > ((__int128)1 << 62) || delta < -((__int128)1 << 62)) {
		tb_char(b, '[');
		tb_int(b, sec);
		tb_char(b, ',');
		tb_int(b, nsec);
		tb_char(b, ']');
		return;
	}
	tb_int(b, (long long)delta);
}

static void tb_mode(text_buf *b, const sf_index_entry *entry, uint32_t fallback)
{
	tb_int(b, entry->has_mode ? (entry->mode & 07777) : fallback);
}

static void tb_segments(text_buf *b, encoder *e, const sf_index_entry *entry)
{
	size_t i;

	tb_char(b, '[');
	for (i = 0; i < entry->segment_count; i++) {
		const sf_segment *seg = &entry->segments[i];

		if (i > 0)
			tb_char(b, ',');
		tb_int(b, seg->shard);
		tb_char(b, ',');
		tb_int(b, (long long)(seg->shard_offset - e->cursor));
		tb_char(b, ',');
		tb_int(b, (long long)seg->length);
		tb_char(b, ',');
		tb_int(b, seg->subst);
		e->cursor = seg->shard_offset + seg->length;
	}
	tb_char(b, ']');
}

static int encode_children(encoder *e, tree *t, size_t dir, text_buf *b);

/* One entry as its array: 0 on an entry of no known type or no memory. */
static int encode_node(encoder *e, tree *t, size_t id, text_buf *b)
{
	tree_node *n = &t->nodes[id];
	const sf_index_entry *entry = n->entry;
	int type = entry ? entry->type : SF_NODE_DIR;

	tb_char(b, '[');
	if (type == SF_NODE_FILE) {
		tb_string(b, SF_INDEX_FILE);
		tb_char(b, ',');
		tb_name(b, n->name);
		tb_char(b, ',');
		tb_mode(b, entry, 0644);
		tb_char(b, ',');
		tb_mtime(b, e, entry);
		tb_char(b, ',');
		tb_segments(b, e, entry);
		if (e->keep_hashes && entry->xxh64) {
			tb_char(b, ',');
			tb_string(b, entry->xxh64);
		}
	} else if (type == SF_NODE_DIR) {
		tb_string(b, SF_INDEX_DIR);
		tb_char(b, ',');
		tb_name(b, n->name);
		tb_char(b, ',');
		if (entry)
			tb_mode(b, entry, 0755);
		else
			tb_int(b, 0555);
		tb_char(b, ',');
		if (entry)
			tb_mtime(b, e, entry);
		else
			tb_put(b, "null", 4);
		tb_char(b, ',');
		if (entry && entry->has_index)
			tb_int(b, entry->index);
		else if (!encode_children(e, t, id, b))
			return 0;
	} else if (type == SF_NODE_SYMLINK) {
		tb_string(b, SF_INDEX_SYMLINK);
		tb_char(b, ',');
		tb_name(b, n->name);
		tb_char(b, ',');
		tb_mtime(b, e, entry);
		tb_char(b, ',');
		if (entry->target)
			tb_name(b, entry->target);
		else
			tb_put(b, "\"\"", 2);
	} else {
		return 0;
	}
	tb_char(b, ']');
	return !b->failed;
}

static int encode_children(encoder *e, tree *t, size_t dir, text_buf *b)
{
	tree_node *n = &t->nodes[dir];
	size_t i;

	if (!sort_children(t, n)) {
		b->failed = 1;
		return 0;
	}
	tb_char(b, '[');
	for (i = 0; i < n->child_count; i++) {
		if (i > 0)
			tb_char(b, ',');
		if (!encode_node(e, t, n->children[i], b))
			return 0;
	}
	tb_char(b, ']');
	return !b->failed;
}

sf_err sf_index_encode_entries(const sf_index_entry *entries, size_t count, int keep_hashes,
				char **text, size_t *len, sf_error *err)
{
	tree t = { NULL, 0, 64, NULL, 128 };
	encoder e = { keep_hashes, 0, 0, 0 };
	text_buf b = { NULL, 0, 0, 0 };
	const char *why = NULL;
	sf_err rc = SF_OK;
	size_t i;

	t.nodes = calloc(t.capacity, sizeof(*t.nodes));
	t.slots = calloc(t.slot_capacity, sizeof(*t.slots));
	if (!t.nodes || !t.slots) {
		rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		goto out;
	}
	t.count = 1; /* node 0: the folder the index describes */
	t.nodes[0].name = sf_strdup("");
	for (i = 0; i < count; i++) {
		if (!place_entry(&t, &entries[i], &why)) {
			rc = sf_error_set(err, strcmp(why, "out of memory") == 0 ? SF_ERR_NOMEM : SF_ERR_FORMAT,
					  "index entry %zu: %s", i, why);
			goto out;
		}
	}
	tb_put(&b, "{\"format\":\"stepfs-index\",\"entries\":", 35);
	if (!encode_children(&e, &t, 0, &b) && !b.failed) {
		rc = sf_error_set(err, SF_ERR_FORMAT, "an index entry of unknown type");
		goto out;
	}
	tb_char(&b, '}');
	if (b.failed) {
		rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory (encoding an index)");
		goto out;
	}
	b.data[b.len] = '\0';
	*text = b.data;
	*len = b.len;
	b.data = NULL;
out:
	for (i = 0; i < t.count; i++) {
		free(t.nodes[i].name);
		free(t.nodes[i].children);
	}
	free(t.nodes);
	free(t.slots);
	free(b.data);
	return rc;
}

/* One 1.0-shaped JSON entry as an sf_index_entry; what it allocates goes
   to *path, *target and *segments for the caller to free. */
static void entry_from_json(json_t *item, sf_index_entry *out, char **path, char **target,
			    sf_segment **segments)
{
	const char *type = json_string_value(json_object_get(item, "type"));
	json_t *mode = json_object_get(item, "mode"), *mtime = json_object_get(item, "mtime");
	json_t *hash = json_object_get(item, "xxh64"), *index = json_object_get(item, "index");
	json_t *list = json_object_get(item, "segments");
	size_t i, n = json_array_size(list);

	memset(out, 0, sizeof(*out));
	*path = entry_bytes(item, "path", "path_hex");
	*target = NULL;
	*segments = NULL;
	out->path = *path;
	out->type = !type ? -1 : strcmp(type, "file") == 0 ? SF_NODE_FILE
			: strcmp(type, "dir") == 0 ? SF_NODE_DIR
			: strcmp(type, "symlink") == 0 ? SF_NODE_SYMLINK : -1;
	out->has_mode = json_is_integer(mode);
	out->mode = out->has_mode ? (uint32_t)(json_integer_value(mode) & 07777) : 0;
	if (json_is_array(mtime) && json_is_integer(json_array_get(mtime, 0)) &&
	    json_is_integer(json_array_get(mtime, 1))) {
		out->mtime_sec = json_integer_value(json_array_get(mtime, 0));
		out->mtime_nsec = (uint32_t)json_integer_value(json_array_get(mtime, 1));
	}
	out->xxh64 = json_is_string(hash) ? json_string_value(hash) : NULL;
	out->has_index = json_is_integer(index);
	out->index = out->has_index ? json_integer_value(index) : 0;
	if (out->type == SF_NODE_SYMLINK) {
		*target = entry_bytes(item, "target", "target_hex");
		out->target = *target;
	}
	if (n > 0 && (*segments = calloc(n, sizeof(**segments))) != NULL) {
		for (i = 0; i < n; i++) {
			json_t *seg = json_array_get(list, i);

			(*segments)[i].shard = (uint32_t)json_integer_value(json_array_get(seg, 0));
			(*segments)[i].shard_offset = (uint64_t)json_integer_value(json_array_get(seg, 1));
			(*segments)[i].length = (uint64_t)json_integer_value(json_array_get(seg, 2));
			(*segments)[i].subst = (uint8_t)json_integer_value(json_array_get(seg, 3));
		}
		out->segments = *segments;
		out->segment_count = n;
	}
}

sf_err sf_index_encode(json_t *entries, int keep_hashes, char **text, size_t *len,
		       sf_error *err)
{
	size_t count = json_array_size(entries), i;
	sf_index_entry *list = calloc(count ? count : 1, sizeof(*list));
	char **owned = calloc(count * 2 + 1, sizeof(*owned));
	sf_segment **segs = calloc(count ? count : 1, sizeof(*segs));
	sf_err rc;

	if (!list || !owned || !segs) {
		rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < count; i++)
		entry_from_json(json_array_get(entries, i), &list[i], &owned[2 * i], &owned[2 * i + 1],
				&segs[i]);
	rc = sf_index_encode_entries(list, count, keep_hashes, text, len, err);
out:
	for (i = 0; owned && segs && i < count; i++) {
		free(owned[2 * i]);
		free(owned[2 * i + 1]);
		free(segs[i]);
	}
	free(owned);
	free(segs);
	free(list);
	return rc;
}

sf_err sf_index_compress(const char *text, size_t len, void **out, size_t *out_len,
			 sf_error *err)
{
	size_t bound = ZSTD_compressBound(len), got;
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	void *buf = malloc(bound ? bound : 1);
	sf_err rc = SF_OK;

	if (!cctx || !buf) {
		rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		goto out;
	}
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, SF_INDEX_LEVEL);
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
	got = ZSTD_compress2(cctx, buf, bound, text, len);
	if (ZSTD_isError(got)) {
		rc = sf_error_set(err, SF_ERR_IO, "cannot compress an index: %s", ZSTD_getErrorName(got));
		goto out;
	}
	*out = buf;
	*out_len = got;
	buf = NULL;
out:
	free(buf);
	ZSTD_freeCCtx(cctx);
	return rc;
}

sf_err sf_index_decompress(const void *data, size_t len, size_t limit, const char *shown, sf_arena *scratch,
			   char **text, size_t *text_len, sf_error *err)
{
	unsigned long long size = ZSTD_getFrameContentSize(data, len);
	char *buf;
	size_t got;

	/* exactly one frame, which states its size */
	if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN ||
	    ZSTD_findFrameCompressedSize(data, len) != len)
		return sf_error_set(err, SF_ERR_CORRUPT, "'%s': not one zstd frame with a content size", shown);
	if (size > limit)
		return sf_error_set(err, SF_ERR_LIMIT, "'%s': %llu bytes once decompressed, more than the limit of %llu",
				    shown, size, (unsigned long long)limit);
	buf = scratch ? sf_arena_alloc(scratch, (size_t)size + 1) : malloc((size_t)size + 1);
	if (!buf)
		return sf_error_set(err, SF_ERR_NOMEM, "'%s': cannot allocate %llu bytes", shown, size);
	got = ZSTD_decompress(buf, (size_t)size, data, len);
	if (ZSTD_isError(got) || got != size) {
		if (!scratch)
			free(buf);
		return sf_error_set(err, SF_ERR_CORRUPT, "'%s': cannot decompress: %s", shown,
				    ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short content");
	}
	buf[size] = '\0';
	*text = buf;
	*text_len = (size_t)size;
	return SF_OK;
}
