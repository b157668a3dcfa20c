/*
 * sf_store.c - the read side of a store: root document, lazy indexes,
 * shards opened on first use, reads through the frame cache, verify.
 */
#include "sf_store.h"

#include <zstd.h>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sf_arena.h"
#include "sf_format.h"
#include "sf_index.h"
#include "sf_jscan.h"
#include "sf_seekable.h"
#include "sf_util.h"
#include "sf_xxhash.h"

typedef struct shard {
	char *file;
	char *kind;
	char *label;
	uint64_t content_bytes;
	uint64_t compressed_bytes;
	uint32_t frames;
	int fd;
	char *dict_file;          /* the shard's zstd dictionary, or NULL */
	uint64_t dict_xxh64;
	sf_seek_reader *reader;
	int opened;               /* open attempted (reader or error below) */
	sf_error open_error;
} shard;

enum { INDEX_UNLOADED, INDEX_LOADING, INDEX_LOADED };

/* An index and, while it is loaded, the nodes it made. Fields below file
   and xxh64 change under the tree lock, apart from refs (see pins). */
typedef struct index_doc {
	char *file;
	uint64_t xxh64;
	int has_xxh64;
	int state;                /* INDEX_* */
	sf_err error;             /* its load failed: not tried again */
	uint64_t owner_ino;       /* the folder that shows it, once one has
				     (its high half names the index above) */
	uint32_t refs;            /* pins, plus one per loaded index below */
	uint64_t used;            /* when last pinned or loaded (store->tick) */
	sf_node **nodes;          /* by position (the low half of an inode number) */
	uint32_t node_count;
	size_t bytes;             /* memory its nodes hold */
	void *pieces;             /* node memory (see load_arena) */
	void *blocks;
} index_doc;

/* Where a list segment's text stands (see list_lines below). */
typedef struct list_scan {
	uint64_t depth;        /* open '{' and '[' */
	uint8_t in_string, escaped;
} list_scan;

#define LIST_MEMO_SLOTS 64

struct list_memo {
	int used;
	uint32_t shard;
	uint64_t seg_start;    /* shard offset where the segment starts */
	uint64_t pos;          /* shard offset the state stands at */
	list_scan state;
};

struct sf_store {
	char *path;
	json_t *document;
	shard *shards;
	uint32_t shard_count;
	index_doc *indexes;
	uint32_t index_count;
	sf_node root;
	pthread_mutex_t tree_lock;
	pthread_mutex_t shard_lock;
	int lock_fd;              /* store.json, held with a shared flock while open */
	int major;                /* format version: 1 plain JSON indexes, 2 compact */
	uint64_t indexes_loaded, index_failures;
	sf_cache *cache;
	pthread_mutex_t list_lock;
	struct list_memo list_memo[LIST_MEMO_SLOTS]; /* see list_state_at */
	sf_arena arena;           /* node memory pieces, under tree_lock */
	pthread_cond_t tree_loaded; /* broadcast when a folder's load ends */
	void *free_pieces;        /* pieces of dropped indexes, for the next loads */
	size_t metadata_budget;   /* 0: indexes are never dropped */
	size_t metadata_bytes;    /* held by loaded indexes */
	uint64_t tick;            /* counts pins and loads, for "least recently used" */
	uint64_t drops, resident;
	int scanner_only;         /* see sf_store_options */
	uint64_t scanned;         /* see sf_index_stats */
};

/*
 * Node memory for one index load. Loads of different folders run at once;
 * each takes 64 KiB pieces (from those of dropped indexes, or else from
 * the store's arena) under the tree lock and carves them without it, so a
 * load wastes at most the tail of its last piece. An array too big for a
 * piece is a malloc'd block of its own. A piece or block starts with the
 * link that chains it to its index's others: when the index is dropped
 * (or its load fails) its pieces go back to the store and its blocks to
 * malloc. The load also lists its nodes in the order it makes them: a
 * node's position there is the low half of its inode number.
 */
#define LOAD_PIECE ((size_t)64 << 10)
#define PIECE_LINK ((size_t)16)

typedef struct load_arena {
	sf_store *store;
	int32_t index_id;
	unsigned char *next;
	size_t left;
	void *pieces, *blocks;    /* chained through their first word */
	size_t bytes;             /* pieces and blocks taken */
	sf_node **nodes;
	uint32_t node_count, node_capacity;
} load_arena;

static void chain_free_blocks(void *block)
{
	while (block) {
		void *next = *(void **)block;

		free(block);
		block = next;
	}
}

/* A piece going back to the store: its whole pages go back to the kernel
   (and read as zeros when touched again), so that the daemon's memory
   follows the indexes loaded now, not the most ever loaded at once; the
   part pages at its ends are zeroed. */
static void piece_release(unsigned char *p)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t start = ((uintptr_t)p + page - 1) & ~(page - 1);
	uintptr_t end = ((uintptr_t)p + LOAD_PIECE) & ~(page - 1);

	if (end > start && madvise((void *)start, end - start, MADV_DONTNEED) == 0) {
		memset(p, 0, start - (uintptr_t)p);
		memset((void *)end, 0, (uintptr_t)p + LOAD_PIECE - end);
	} else {
		memset(p, 0, LOAD_PIECE);
	}
}

/* Give a load's memory back; store->tree_lock held. Pieces on the free
   list are zero but for their link. */
static void load_memory_free(sf_store *store, void *pieces, void *blocks)
{
	while (pieces) {
		void *next = *(void **)pieces;

		piece_release(pieces);
		*(void **)pieces = store->free_pieces;
		store->free_pieces = pieces;
		pieces = next;
	}
	chain_free_blocks(blocks);
}

static void drop_over_budget(sf_store *store, size_t extra);
static void unload_nodes(sf_store *store, sf_node *dir, sf_node **nodes, uint32_t count, void *pieces,
			 void *blocks);

/* size bytes, zeroed and 16-aligned; NULL when out of memory. */
static void *load_alloc(load_arena *la, size_t size)
{
	unsigned char *p;

	if (size == 0 || size > SIZE_MAX / 2)
		return NULL;
	size = (size + 15) & ~(size_t)15;
	if (size > la->left) {
		/* a large array gets a block of its own, so that the current
		   piece goes on serving small nodes */
		if (size > LOAD_PIECE / 4) {
			p = calloc(1, PIECE_LINK + size);
			if (!p)
				return NULL;
			*(void **)p = la->blocks;
			la->blocks = p;
			la->bytes += PIECE_LINK + size;
			return p + PIECE_LINK;
		}
		pthread_mutex_lock(&la->store->tree_lock);
		/* room first: the indexes held and this load stay near the
		   budget (the load is not counted until it ends) */
		drop_over_budget(la->store, la->bytes + LOAD_PIECE);
		p = la->store->free_pieces;
		if (p) {
			la->store->free_pieces = *(void **)p;
			memset(p, 0, PIECE_LINK);
		} else {
			p = sf_arena_alloc(&la->store->arena, LOAD_PIECE);
		}
		pthread_mutex_unlock(&la->store->tree_lock);
		if (!p)
			return NULL;
		*(void **)p = la->pieces;
		la->pieces = p;
		la->bytes += LOAD_PIECE;
		la->next = p + PIECE_LINK;
		la->left = LOAD_PIECE - PIECE_LINK;
	}
	p = la->next;
	la->next += size;
	la->left -= size;
	return p;
}

/* ---- small helpers ----------------------------------------------------- */

/* The whole of a small file, NUL-terminated: from scratch when given
   (freed with it), else malloc'd. */
static sf_err read_whole_file(const char *path, const char *shown, uint64_t limit, sf_arena *scratch,
			      char **out, size_t *out_len, sf_error *err)
{
	/* O_NONBLOCK: a FIFO in place of a store file must not block the
	   open; it is refused below like any other non-regular file. */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	char *buf = NULL;
	size_t done = 0;
	sf_err rc = SF_OK;

	if (fd < 0)
		return errno == ENOENT
			? sf_error_set(err, SF_ERR_NOTFOUND, "'%s': missing", shown)
			: sf_error_io(err, errno, "'%s': cannot open", shown);
	if (fstat(fd, &st) != 0) {
		rc = sf_error_io(err, errno, "'%s': cannot stat", shown);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = sf_error_set(err, SF_ERR_CORRUPT, "'%s': not a regular file", shown);
		goto out;
	}
	if ((uint64_t)st.st_size > limit) {
		rc = sf_error_set(err, SF_ERR_LIMIT, "'%s': %" PRIu64 " bytes, more than the limit of %" PRIu64,
				  shown, (uint64_t)st.st_size, limit);
		goto out;
	}
	buf = scratch ? sf_arena_alloc(scratch, (size_t)st.st_size + 1) : malloc((size_t)st.st_size + 1);
	if (!buf) {
		rc = sf_error_set(err, SF_ERR_NOMEM, "'%s': cannot allocate %" PRIu64 " bytes",
				  shown, (uint64_t)st.st_size);
		goto out;
	}
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = sf_error_io(err, errno, "'%s': read failed at byte %zu", shown, done);
			goto out;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	buf[done] = '\0';
	*out = buf;
	*out_len = done;
	buf = NULL;
out:
	if (!scratch)
		free(buf);
	close(fd);
	return rc;
}

static sf_err parse_json(const char *text, size_t len, const char *shown,
			 json_t **out, sf_error *err)
{
	json_error_t jerr;
	json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);

	if (!doc)
		return sf_error_set(err, SF_ERR_CORRUPT, "'%s': byte %d: %s", shown,
				    jerr.position, jerr.text);
	*out = doc;
	return SF_OK;
}

static const char *get_string(json_t *object, const char *key)
{
	json_t *value = json_object_get(object, key);

	return json_is_string(value) ? json_string_value(value) : NULL;
}

static int get_u64(json_t *object, const char *key, uint64_t *out)
{
	json_t *value = json_object_get(object, key);

	if (!json_is_integer(value) || json_integer_value(value) < 0)
		return 0;
	*out = (uint64_t)json_integer_value(value);
	return 1;
}

/* A file name inside the store: relative, no "..", no empty components. */
static int safe_relative_path(const char *path)
{
	const char *p = path;

	if (!*p || *p == '/' || strlen(path) > SF_MAX_PATH_BYTES)
		return 0;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);

		if (len == 0 || (len == 1 && p[0] == '.') ||
		    (len == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		p += len;
		if (*p == '/')
			p++;
	}
	return 1;
}


/* ---- open -------------------------------------------------------------- */

static sf_err parse_shards(sf_store *store, json_t *list, sf_error *err)
{
	size_t i;

	if (!json_is_array(list))
		return sf_error_set(err, SF_ERR_CORRUPT, "'%s/%s': \"shards\" is not an array",
				    store->path, SF_STORE_ROOT_FILE);
	store->shard_count = (uint32_t)json_array_size(list);
	store->shards = calloc(store->shard_count ? store->shard_count : 1, sizeof(shard));
	if (!store->shards)
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	for (i = 0; i < store->shard_count; i++) {
		json_t *item = json_array_get(list, i);
		shard *s = &store->shards[i];
		const char *file = get_string(item, "file");
		const char *kind = get_string(item, "kind");
		const char *label = get_string(item, "label");
		const char *dict;
		uint64_t frames = 0;

		s->fd = -1;
		if (!file || !safe_relative_path(file) || !kind ||
		    !get_u64(item, "content_bytes", &s->content_bytes) ||
		    !get_u64(item, "compressed_bytes", &s->compressed_bytes) ||
		    !get_u64(item, "frames", &frames) || frames > SF_SEEK_MAX_FRAMES)
			return sf_error_set(err, SF_ERR_CORRUPT,
					    "'%s/%s': shard %zu: expected file, kind, content_bytes, compressed_bytes and frames",
					    store->path, SF_STORE_ROOT_FILE, i);
		s->frames = (uint32_t)frames;
		dict = get_string(json_object_get(item, "dictionary"), "file");
		if (dict) {
			const char *hash = get_string(json_object_get(item, "dictionary"), "xxh64");

			if (!safe_relative_path(dict) || !hash || !sf_parse_hex64(hash, &s->dict_xxh64))
				return sf_error_set(err, SF_ERR_CORRUPT,
						    "'%s/%s': shard %zu: dictionary needs a relative \"file\" "
						    "and an \"xxh64\"", store->path, SF_STORE_ROOT_FILE, i);
			s->dict_file = sf_strdup(dict);
			if (!s->dict_file)
				return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		}
		s->file = sf_strdup(file);
		s->kind = sf_strdup(kind);
		s->label = sf_strdup(label ? label : "");
		if (!s->file || !s->kind || !s->label)
			return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	}
	return SF_OK;
}

static sf_err parse_indexes(sf_store *store, json_t *list, sf_error *err)
{
	size_t i;

	if (!json_is_array(list) || json_array_size(list) == 0)
		return sf_error_set(err, SF_ERR_CORRUPT, "'%s/%s': \"indexes\" is not a non-empty array",
				    store->path, SF_STORE_ROOT_FILE);
	store->index_count = (uint32_t)json_array_size(list);
	store->indexes = calloc(store->index_count, sizeof(index_doc));
	if (!store->indexes)
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	for (i = 0; i < store->index_count; i++) {
		json_t *item = json_array_get(list, i);
		const char *file = get_string(item, "file");
		const char *hash = get_string(item, "xxh64");

		if (!file || !safe_relative_path(file))
			return sf_error_set(err, SF_ERR_CORRUPT, "'%s/%s': index %zu: expected a relative \"file\"",
					    store->path, SF_STORE_ROOT_FILE, i);
		store->indexes[i].file = sf_strdup(file);
		if (!store->indexes[i].file)
			return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		if (hash) {
			if (!sf_parse_hex64(hash, &store->indexes[i].xxh64))
				return sf_error_set(err, SF_ERR_CORRUPT, "'%s/%s': index %zu: bad xxh64 \"%s\"",
						    store->path, SF_STORE_ROOT_FILE, i, hash);
			store->indexes[i].has_xxh64 = 1;
		}
	}
	return SF_OK;
}

sf_err sf_store_open(sf_store **out, const char *path,
		     const sf_store_options *options, sf_error *err)
{
	sf_store *store = calloc(1, sizeof(*store));
	char *text = NULL, *root_path = NULL, shown[SF_MAX_PATH_BYTES + 64];
	size_t text_len = 0;
	json_t *version, *format;
	uint64_t root_index = 0;
	sf_err rc;

	*out = NULL;
	if (!store)
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	sf_mutex_init(&store->tree_lock);
	pthread_cond_init(&store->tree_loaded, NULL);
	sf_mutex_init(&store->shard_lock);
	sf_mutex_init(&store->list_lock);
	store->path = sf_strdup(path);
	store->lock_fd = -1;
	store->root.name = sf_strdup("");
	store->root.type = SF_NODE_DIR;
	store->root.mode = 0755;
	store->root.ino = 1;
	store->root.index_id = -1;
	root_path = sf_path_join(path, SF_STORE_ROOT_FILE);
	if (!store->path || !store->root.name || !root_path) {
		rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		goto fail;
	}
	snprintf(shown, sizeof(shown), "%s", root_path);
	rc = read_whole_file(root_path, shown, 64u << 20, NULL, &text, &text_len, err);
	if (rc == SF_ERR_NOTFOUND)
		rc = sf_error_set(err, SF_ERR_NOTFOUND, "'%s': not a store (no %s)", path,
				  SF_STORE_ROOT_FILE);
	if (rc != SF_OK)
		goto fail;
	rc = parse_json(text, text_len, shown, &store->document, err);
	if (rc != SF_OK)
		goto fail;
	format = json_object_get(store->document, "format");
	version = json_object_get(store->document, "format_version");
	if (!json_is_string(format) || strcmp(json_string_value(format), SF_FORMAT_NAME) != 0) {
		rc = sf_error_set(err, SF_ERR_FORMAT, "'%s': not a stepfs store (expected \"format\": \"%s\")",
				  shown, SF_FORMAT_NAME);
		goto fail;
	}
	if (!json_is_array(version) || json_array_size(version) != 2 ||
	    !json_is_integer(json_array_get(version, 0)) ||
	    !json_is_integer(json_array_get(version, 1))) {
		rc = sf_error_set(err, SF_ERR_FORMAT, "'%s': expected \"format_version\": [major, minor]", shown);
		goto fail;
	}
	if (json_integer_value(json_array_get(version, 0)) < SF_FORMAT_OLDEST_MAJOR ||
	    json_integer_value(json_array_get(version, 0)) > SF_FORMAT_MAJOR) {
		rc = sf_error_set(err, SF_ERR_VERSION,
				  "'%s': store format version %" JSON_INTEGER_FORMAT ".%" JSON_INTEGER_FORMAT
				  " is not supported; this stepfs reads versions %d.x to %d.x (written by %s)",
				  path, json_integer_value(json_array_get(version, 0)),
				  json_integer_value(json_array_get(version, 1)), SF_FORMAT_OLDEST_MAJOR, SF_FORMAT_MAJOR,
				  get_string(store->document, "writer") ? get_string(store->document, "writer") : "an unknown writer");
		goto fail;
	}
	store->major = (int)json_integer_value(json_array_get(version, 0));
	rc = parse_shards(store, json_object_get(store->document, "shards"), err);
	if (rc == SF_OK)
		rc = parse_indexes(store, json_object_get(store->document, "indexes"), err);
	if (rc != SF_OK)
		goto fail;
	if (!get_u64(store->document, "root_index", &root_index) || root_index >= store->index_count) {
		rc = sf_error_set(err, SF_ERR_CORRUPT, "'%s': expected \"root_index\" below %u", shown,
				  store->index_count);
		goto fail;
	}
	store->root.index_id = (int32_t)root_index;
	{
		/* the root shows the packed folder's time; it is read-only */
		json_t *mtime = json_object_get(json_object_get(store->document, "source"), "mtime");

		store->root.mode = 0555;
		if (json_is_array(mtime) && json_is_integer(json_array_get(mtime, 0)) &&
		    json_is_integer(json_array_get(mtime, 1)) &&
		    json_integer_value(json_array_get(mtime, 1)) >= 0 &&
		    json_integer_value(json_array_get(mtime, 1)) < 1000000000) {
			store->root.mtime_sec = json_integer_value(json_array_get(mtime, 0));
			store->root.mtime_nsec = (uint32_t)json_integer_value(json_array_get(mtime, 1));
		}
	}
	/* A shared lock on store.json says "in use" to `stepstore gc`, which
	   takes it exclusively before it removes a store. */
	store->lock_fd = open(root_path, O_RDONLY | O_CLOEXEC);
	if (store->lock_fd >= 0 && flock(store->lock_fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
		rc = sf_error_set(err, SF_ERR_IO, "'%s': the store is being removed (stepstore gc holds its lock)",
				  path);
		goto fail;
	}
	store->cache = sf_cache_create(options && options->cache_bytes ? options->cache_bytes
							       : (size_t)64 << 20);
	if (!store->cache) {
		rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		goto fail;
	}
	store->metadata_budget = options ? options->metadata_bytes : 0;
	store->scanner_only = options ? options->index_scanner_only : 0;
	/* the root's index stays pinned: it is never dropped */
	store->indexes[root_index].owner_ino = 1;
	rc = sf_store_open_dir(store, &store->root, err);
	if (rc != SF_OK)
		goto fail;
	free(text);
	free(root_path);
	*out = store;
	return SF_OK;
fail:
	free(text);
	free(root_path);
	sf_store_free(store);
	return rc;
}

/* What a node holds from malloc: its children array and symlink target.
   The nodes themselves and their segments live in load pieces. */
static void free_node_contents(sf_node *node)
{
	uint32_t i;

	for (i = 0; i < node->child_count; i++)
		free_node_contents(node->children[i]);
	free(node->children);
	free(node->target);
}

void sf_store_free(sf_store *store)
{
	uint32_t i;

	if (!store)
		return;
	free_node_contents(&store->root);
	for (i = 0; i < store->index_count; i++) {
		free(store->indexes[i].nodes);
		chain_free_blocks(store->indexes[i].blocks);
	}
	sf_arena_free(&store->arena);
	pthread_cond_destroy(&store->tree_loaded);
	free(store->root.name);
	for (i = 0; i < store->shard_count; i++) {
		sf_seek_reader_free(store->shards[i].reader);
		if (store->shards[i].fd >= 0)
			close(store->shards[i].fd);
		free(store->shards[i].file);
		free(store->shards[i].dict_file);
		free(store->shards[i].kind);
		free(store->shards[i].label);
	}
	free(store->shards);
	for (i = 0; i < store->index_count; i++)
		free(store->indexes[i].file);
	free(store->indexes);
	sf_cache_free(store->cache);
	if (store->document)
		json_decref(store->document);
	pthread_mutex_destroy(&store->tree_lock);
	pthread_mutex_destroy(&store->shard_lock);
	pthread_mutex_destroy(&store->list_lock);
	if (store->lock_fd >= 0)
		close(store->lock_fd);
	free(store->path);
	free(store);
}

const sf_node *sf_store_root(sf_store *store)
{
	return &store->root;
}

void *sf_store_document(const sf_store *store)
{
	return store->document;
}

uint32_t sf_store_shard_count(const sf_store *store)
{
	return store->shard_count;
}

uint32_t sf_store_index_count(const sf_store *store)
{
	return store->index_count;
}

void sf_store_shard_info(const sf_store *store, uint32_t id, sf_shard_info *info)
{
	const shard *s = &store->shards[id];

	info->file = s->file;
	info->kind = s->kind;
	info->label = s->label;
	info->content_bytes = s->content_bytes;
	info->compressed_bytes = s->compressed_bytes;
	info->frames = s->frames;
}

/* ---- indexes ----------------------------------------------------------- */

static sf_node *add_child(load_arena *arena, sf_node *dir, const char *name, size_t len)
{
	sf_node *child;

	if (dir->child_count == dir->child_capacity) {
		uint32_t cap = dir->child_capacity ? dir->child_capacity * 2 : 8;
		sf_node **grown = realloc(dir->children, cap * sizeof(*grown));

		if (!grown)
			return NULL;
		dir->children = grown;
		dir->child_capacity = cap;
	}
	/* the name lives right after the node: one allocation, not two */
	if (arena->node_count == arena->node_capacity) {
		uint32_t cap = arena->node_capacity ? arena->node_capacity * 2 : 64;
		sf_node **grown;

		if (arena->node_capacity >= UINT32_MAX / 2)
			return NULL;
		grown = realloc(arena->nodes, cap * sizeof(*grown));
		if (!grown)
			return NULL;
		arena->nodes = grown;
		arena->node_capacity = cap;
	}
	child = load_alloc(arena, sizeof(*child) + len + 1);
	if (!child)
		return NULL;
	child->name = (char *)(child + 1);
	memcpy(child->name, name, len);
	child->parent = dir;
	child->index_id = -1;
	child->ino = ((uint64_t)(arena->index_id + 1) << 32) | arena->node_count;
	arena->nodes[arena->node_count++] = child;
	dir->children[dir->child_count++] = child;
	return child;
}

/* The nodes created by one index load, by (parent, name), so that paths
   in any order find their folders in constant time. */
typedef struct load_map {
	sf_node **slots;
	size_t capacity;
	size_t count;
	load_arena *arena;  /* where the load's nodes go */
} load_map;

static size_t load_slot(const load_map *map, const sf_node *parent, const char *name, size_t len)
{
	return (size_t)(sf_xxh64(name, len, (uint64_t)(uintptr_t)parent) & (map->capacity - 1));
}

static sf_node *find_loading_child(const load_map *map, sf_node *dir, const char *name, size_t len)
{
	size_t slot = load_slot(map, dir, name, len);

	while (map->slots[slot]) {
		sf_node *c = map->slots[slot];

		if (c->parent == dir && strlen(c->name) == len && memcmp(c->name, name, len) == 0)
			return c;
		slot = (slot + 1) & (map->capacity - 1);
	}
	return NULL;
}

static void insert_slot(load_map *map, sf_node *node)
{
	size_t slot = load_slot(map, node->parent, node->name, strlen(node->name));

	while (map->slots[slot])
		slot = (slot + 1) & (map->capacity - 1);
	map->slots[slot] = node;
}

/* 0 when out of memory. The table stays at most half full. */
static int remember_child(load_map *map, sf_node *node)
{
	if ((map->count + 1) * 2 > map->capacity) {
		load_map bigger = { calloc(map->capacity * 2, sizeof(sf_node *)), map->capacity * 2, map->count,
				    map->arena };
		size_t i;

		if (!bigger.slots)
			return 0;
		for (i = 0; i < map->capacity; i++)
			if (map->slots[i])
				insert_slot(&bigger, map->slots[i]);
		free(map->slots);
		*map = bigger;
	}
	insert_slot(map, node);
	map->count++;
	return 1;
}

/* Children are sorted by name in byte order. Indexes list them in natural
   order (batch_2 before batch_10): a few runs already in byte order
   (batch_0 to batch_9, batch_10 to batch_99, ...), which a merge of runs
   joins in a few passes. Names compare on their first 16 bytes as two
   big-endian integers, and whole names only when those are equal. */
typedef struct sort_key {
	uint64_t head[2];
	sf_node *node;
} sort_key;

static uint64_t name_word(const char *name, size_t len, size_t at)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < 8; i++)
		v = (v << 8) | (at + i < len ? (unsigned char)name[at + i] : 0);
	return v;
}

static inline int key_after(const sort_key *x, const sort_key *y)
{
	if (x->head[0] != y->head[0])
		return x->head[0] > y->head[0];
	if (x->head[1] != y->head[1])
		return x->head[1] > y->head[1];
	return strcmp(x->node->name, y->node->name) > 0;
}

/* Merge the sorted runs from[a, b) and from[b, c) into to[a, c). */
static void merge_runs(const sort_key *from, sort_key *to, uint32_t a, uint32_t b, uint32_t c)
{
	uint32_t i = a, j = b, k = a;

	while (i < b && j < c)
		to[k++] = key_after(&from[i], &from[j]) ? from[j++] : from[i++];
	while (i < b)
		to[k++] = from[i++];
	while (j < c)
		to[k++] = from[j++];
}

/* Sort dir's children; 0 when two share a name (in *duplicate) or memory
   ran out (*duplicate NULL). */
static int sort_children(sf_node *dir, const sf_node **duplicate)
{
	uint32_t i, n = dir->child_count, runs = 0;
	sort_key *keys, *other;
	uint32_t *starts;

	if (n < 2)
		return 1;
	keys = malloc((size_t)n * 2 * sizeof(*keys));
	starts = malloc(((size_t)n + 1) * sizeof(*starts));
	if (!keys || !starts) {
		free(keys);
		free(starts);
		*duplicate = NULL;
		return 0;
	}
	other = keys + n;
	for (i = 0; i < n; i++) {
		const char *name = dir->children[i]->name;
		size_t len = strnlen(name, 16);

		keys[i].head[0] = name_word(name, len, 0);
		keys[i].head[1] = name_word(name, len, 8);
		keys[i].node = dir->children[i];
		if (i == 0 || key_after(&keys[i - 1], &keys[i]))
			starts[runs++] = i;
	}
	starts[runs] = n;
	while (runs > 1) {
		uint32_t r, kept = 0;
		sort_key *swap;

		for (r = 0; r < runs; r += 2) {
			if (r + 1 < runs)
				merge_runs(keys, other, starts[r], starts[r + 1], starts[r + 2]);
			else
				memcpy(other + starts[r], keys + starts[r], (starts[r + 1] - starts[r]) * sizeof(*keys));
			starts[kept++] = starts[r];
		}
		starts[kept] = n;
		runs = kept;
		swap = keys;
		keys = other;
		other = swap;
	}
	*duplicate = NULL;
	for (i = 0; i < n; i++) {
		dir->children[i] = keys[i].node;
		if (i > 0 && !*duplicate && keys[i].head[0] == keys[i - 1].head[0] &&
		    keys[i].head[1] == keys[i - 1].head[1] && strcmp(keys[i].node->name, keys[i - 1].node->name) == 0)
			*duplicate = keys[i].node;
	}
	free(keys < other ? keys : other);
	free(starts);
	return *duplicate == NULL;
}

/* Sort every folder of a load; 0 when two entries share a name (in
   *duplicate) or memory ran out (*duplicate NULL). */
static int sort_tree(sf_node *dir, const sf_node **duplicate)
{
	uint32_t i;

	if (!sort_children(dir, duplicate))
		return 0;
	for (i = 0; i < dir->child_count; i++)
		if (dir->children[i]->type == SF_NODE_DIR && dir->children[i]->index_id < 0 &&
		    !sort_tree(dir->children[i], duplicate))
			return 0;
	return 1;
}

static int parse_mtime(json_t *entry, sf_node *node)
{
	json_t *mtime = json_object_get(entry, "mtime");

	if (!mtime)
		return 1;
	if (!json_is_array(mtime) || json_array_size(mtime) != 2 ||
	    !json_is_integer(json_array_get(mtime, 0)) || !json_is_integer(json_array_get(mtime, 1)))
		return 0;
	node->mtime_sec = json_integer_value(json_array_get(mtime, 0));
	if (json_integer_value(json_array_get(mtime, 1)) < 0 ||
	    json_integer_value(json_array_get(mtime, 1)) >= 1000000000)
		return 0;
	node->mtime_nsec = (uint32_t)json_integer_value(json_array_get(mtime, 1));
	return 1;
}

/* Decode the entry's path: "path" (UTF-8) or "path_hex" (raw bytes). */
static char *entry_bytes(json_t *entry, const char *key, const char *hex_key)
{
	const char *text = get_string(entry, key);

	if (text)
		return sf_strdup(text);
	text = get_string(entry, hex_key);
	return text ? sf_hex_decode(text) : NULL;
}

/* Files of more segments than this keep each segment's file offset in an
   array right after the segments, for a binary search; smaller files add
   up the lengths as they go. */
#define SEGMENT_LINEAR_MAX 16

/* count segments (count > 0) from the arena, with room for the offsets
   when the file needs them. */
static sf_segment *alloc_segments(load_arena *arena, size_t count)
{
	size_t bytes = count * sizeof(sf_segment);

	if (count > SEGMENT_LINEAR_MAX)
		bytes += count * sizeof(uint64_t);
	return load_alloc(arena, bytes);
}

/* The file offsets of a file with many segments, once its segments are set. */
static void set_segment_starts(sf_node *node)
{
	uint64_t *starts = (uint64_t *)(node->segments + node->segment_count), at = 0;
	uint32_t i;

	if (node->segment_count <= SEGMENT_LINEAR_MAX)
		return;
	for (i = 0; i < node->segment_count; i++) {
		starts[i] = at;
		at += node->segments[i].length;
	}
}

static int parse_segments(sf_store *store, load_arena *arena, json_t *list, sf_node *node, const char **why)
{
	size_t i, count = json_array_size(list);
	uint64_t offset = 0;

	if (!json_is_array(list)) {
		*why = "\"segments\" is not an array";
		return 0;
	}
	if (count > UINT32_MAX / 4) {
		*why = "too many segments";
		return 0;
	}
	node->segments = alloc_segments(arena, count ? count : 1);
	if (!node->segments) {
		*why = "out of memory";
		return 0;
	}
	for (i = 0; i < count; i++) {
		json_t *seg = json_array_get(list, i);
		sf_segment *s = &node->segments[i];
		json_int_t v[4];
		size_t k;

		if (!json_is_array(seg) || json_array_size(seg) != 4) {
			*why = "a segment is not [shard, offset, length, subst]";
			return 0;
		}
		for (k = 0; k < 4; k++) {
			json_t *x = json_array_get(seg, k);

			if (!json_is_integer(x) || json_integer_value(x) < 0) {
				*why = "a segment holds a value that is not a non-negative integer";
				return 0;
			}
			v[k] = json_integer_value(x);
		}
		if ((uint64_t)v[0] >= store->shard_count) {
			*why = "a segment names a shard that does not exist";
			return 0;
		}
		if ((uint64_t)v[1] > store->shards[v[0]].content_bytes ||
		    (uint64_t)v[2] > store->shards[v[0]].content_bytes - (uint64_t)v[1]) {
			*why = "a segment reaches past the end of its shard";
			return 0;
		}
		if (v[3] > SF_SUBST_MAX) {
			*why = "a segment has an unknown substitution";
			return 0;
		}
		s->shard = (uint32_t)v[0];
		s->shard_offset = (uint64_t)v[1];
		s->length = (uint64_t)v[2];
		s->subst = (uint8_t)v[3];
		offset += s->length;
	}
	node->segment_count = (uint32_t)count;
	set_segment_starts(node);
	if (offset != node->size) {
		*why = "the segments do not add up to the file size";
		return 0;
	}
	return 1;
}

/* Walk/create the directories of path below base; return the parent of
   the last component and set name and name_len to that component. */
static sf_node *parent_for(sf_store *store, load_map *map, sf_node *base, const char *path,
			   const char **name, size_t *name_len)
{
	sf_node *dir = base;
	const char *p = path;

	for (;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		sf_node *child;

		if (!slash) {
			*name = p;
			*name_len = len;
			return dir;
		}
		child = find_loading_child(map, dir, p, len);
		if (!child) {
			child = add_child(map->arena, dir, p, len);
			if (!child || !remember_child(map, child))
				return NULL;
			child->type = SF_NODE_DIR;
			child->mode = 0555;
			child->mtime_sec = dir->mtime_sec;
			child->mtime_nsec = dir->mtime_nsec;
			child->loaded = 1;
		} else if (child->type != SF_NODE_DIR || child->index_id >= 0) {
			return NULL;
		}
		dir = child;
		p = slash + 1;
	}
}

/* ---- index documents, format 2.0 ---------------------------------------- */

/* Two readers of the JSON text of a 2.0 index (docs/FORMAT.md) build the
   same nodes as entries come, with no document tree:
    - the direct reader walks the text in memory. It takes the index as
      the packer writes it (any JSON white space, strings without escapes,
      integers) and gives up, building nothing, at anything else: escapes,
      names in hex, keys it does not know, and every fault;
    - the streaming scanner then reads the index again. It takes all of
      JSON and names the byte and the entry where an index goes wrong.
   Both give entries their meaning through the same v2_set_* functions. */
typedef struct v2_loader {
	sf_store *store;
	load_arena *arena;        /* where its nodes go */
	sf_jscan *scan;
	const char *shown;
	int32_t index_id;
	sf_jtok tok;
	sf_error *err;
	size_t entry;             /* entries seen so far */
	int64_t last_sec;         /* running time */
	uint32_t last_nsec;
	uint64_t cursor;          /* end of the previous segment */
	size_t *path_len;         /* path length of each open folder, by depth */
	size_t depth;
	sf_segment *segs;         /* one file's segments as they are read */
	uint32_t seg_capacity;
} v2_loader;

/* Next token; SF_OK or the scanner's error (already in err). */
static sf_err v2_next(v2_loader *l)
{
	return sf_jscan_next(l->scan, &l->tok, l->err);
}

/* The byte is the scanner's; the direct reader's failures are not kept. */
static sf_err v2_fail(v2_loader *l, const char *why)
{
	return sf_error_set(l->err, SF_ERR_CORRUPT, "'%s': byte %" PRIu64 ": entry %zu: %s",
			    l->shown, l->tok.start, l->entry, why);
}

static void put_utf8(char *out, size_t *used, uint32_t c)
{
	if (c < 0x80) {
		out[(*used)++] = (char)c;
	} else if (c < 0x800) {
		out[(*used)++] = (char)(0xC0 | c >> 6);
		out[(*used)++] = (char)(0x80 | (c & 0x3F));
	} else if (c < 0x10000) {
		out[(*used)++] = (char)(0xE0 | c >> 12);
		out[(*used)++] = (char)(0x80 | (c >> 6 & 0x3F));
		out[(*used)++] = (char)(0x80 | (c & 0x3F));
	} else {
		out[(*used)++] = (char)(0xF0 | c >> 18);
		out[(*used)++] = (char)(0x80 | (c >> 12 & 0x3F));
		out[(*used)++] = (char)(0x80 | (c >> 6 & 0x3F));
		out[(*used)++] = (char)(0x80 | (c & 0x3F));
	}
}

static int hex_digit_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode the raw text of a JSON string (the scanner validated its
   syntax) into at most cap bytes; 0 on NUL, a lone surrogate, or too
   long. out receives a NUL-terminated string. */
static int v2_unescape(const char *raw, size_t len, char *out, size_t cap, size_t *out_len)
{
	size_t i = 0, used = 0;

	while (i < len) {
		uint32_t c;

		if (used + 4 > cap)
			return 0;
		if (raw[i] != '\\') {
			out[used++] = raw[i++];
			continue;
		}
		i++;
		switch (raw[i++]) {
		case '"': out[used++] = '"'; continue;
		case '\\': out[used++] = '\\'; continue;
		case '/': out[used++] = '/'; continue;
		case 'b': out[used++] = '\b'; continue;
		case 'f': out[used++] = '\f'; continue;
		case 'n': out[used++] = '\n'; continue;
		case 'r': out[used++] = '\r'; continue;
		case 't': out[used++] = '\t'; continue;
		case 'u': break;
		default: return 0;
		}
		if (i + 4 > len)
			return 0;
		c = (uint32_t)(hex_digit_value(raw[i]) << 12 | hex_digit_value(raw[i + 1]) << 8 |
			       hex_digit_value(raw[i + 2]) << 4 | hex_digit_value(raw[i + 3]));
		i += 4;
		if (c >= 0xDC00 && c <= 0xDFFF)
			return 0;
		if (c >= 0xD800 && c <= 0xDBFF) {
			uint32_t low;

			if (i + 6 > len || raw[i] != '\\' || raw[i + 1] != 'u')
				return 0;
			low = (uint32_t)(hex_digit_value(raw[i + 2]) << 12 | hex_digit_value(raw[i + 3]) << 8 |
					 hex_digit_value(raw[i + 4]) << 4 | hex_digit_value(raw[i + 5]));
			if (low < 0xDC00 || low > 0xDFFF)
				return 0;
			i += 6;
			c = 0x10000 + ((c - 0xD800) << 10) + (low - 0xDC00);
		}
		if (c == 0)
			return 0;
		put_utf8(out, &used, c);
	}
	out[used] = '\0';
	*out_len = used;
	return 1;
}

/* ---- what an entry's values mean (both readers) ---- */

/* A new entry of type t (SF_NODE_*) named name in dir; *path_len gets the
   length of its path from the index's folder. */
static sf_err v2_set_node(v2_loader *l, sf_node *dir, uint8_t t, const char *name, size_t name_len,
			  size_t *path_len, sf_node **out)
{
	sf_node *node;

	if (name_len == 0 || name_len > SF_MAX_NAME_BYTES)
		return v2_fail(l, "expected a name of 1 to 255 bytes");
	if (memchr(name, '/', name_len) || (name_len <= 2 && name[0] == '.' && name[name_len - 1] == '.'))
		return v2_fail(l, "a name with '/', or \".\" or \"..\"");
	*path_len = l->path_len[l->depth] + (l->depth ? 1 : 0) + name_len;
	if (*path_len > SF_MAX_PATH_BYTES)
		return v2_fail(l, "a path longer than 4096 bytes");
	node = add_child(l->arena, dir, name, name_len);
	if (!node)
		return sf_error_set(l->err, SF_ERR_NOMEM, "out of memory");
	node->type = t;
	if (t == SF_NODE_SYMLINK)
		node->mode = 0777;
	*out = node;
	return SF_OK;
}

static sf_err v2_set_mode(v2_loader *l, sf_node *node, int64_t mode)
{
	if (mode < 0 || mode > 07777)
		return v2_fail(l, "expected a mode from 0 to 07777");
	node->mode = (uint32_t)mode;
	return SF_OK;
}

/* null in place of a folder's time: the time of the folder above. */
static void v2_set_time_above(sf_node *node)
{
	node->mtime_sec = node->parent->mtime_sec;
	node->mtime_nsec = node->parent->mtime_nsec;
}

static sf_err v2_set_time(v2_loader *l, sf_node *node, int64_t sec, int64_t nsec)
{
	if (nsec < 0 || nsec >= 1000000000)
		return v2_fail(l, "expected nanoseconds below 10^9");
	l->last_sec = node->mtime_sec = sec;
	l->last_nsec = node->mtime_nsec = (uint32_t)nsec;
	return SF_OK;
}

/* A time given as a difference in nanoseconds from the entry before. */
static sf_err v2_set_time_delta(v2_loader *l, sf_node *node, int64_t delta)
{
	int64_t ns, sec, nsec;
	__int128 t;

	/* the common case in 64 bits: the seconds move by delta / 10^9 */
	if (!__builtin_add_overflow(delta, (int64_t)l->last_nsec, &ns)) {
		sec = ns / 1000000000;
		nsec = ns % 1000000000;
		if (nsec < 0) {
			nsec += 1000000000;
			sec--;
		}
		if (!__builtin_add_overflow(sec, l->last_sec, &sec) && sec <= INT64_MAX / 1000000000 - 1 &&
		    sec >= INT64_MIN / 1000000000 + 1)
			return v2_set_time(l, node, sec, nsec);
	}
	{
		__int128 q;

		t = (__int128)l->last_sec * 1000000000 + l->last_nsec + delta;
		q = t / 1000000000;
		nsec = (int64_t)(t % 1000000000);
		if (nsec < 0) {
			nsec += 1000000000;
			q--;
		}
		if (q < INT64_MIN || q > INT64_MAX)
			return v2_fail(l, "a time out of range");
		sec = (int64_t)q;
	}
	return v2_set_time(l, node, sec, nsec);
}

/* One segment [shard, offset difference, length, subst], the file's
   count-th; *size adds its length. */
static sf_err v2_set_segment(v2_loader *l, const int64_t v[4], uint32_t *count, uint64_t *size)
{
	sf_store *store = l->store;
	uint64_t offset, content;
	sf_segment *s;
	__int128 at;

	if (v[0] < 0 || v[2] < 0 || v[3] < 0)
		return v2_fail(l, "segments are groups of 4 integers [shard, offset difference, length, subst]");
	if ((uint64_t)v[0] >= store->shard_count)
		return v2_fail(l, "a segment names a shard that does not exist");
	content = store->shards[v[0]].content_bytes;
	at = (__int128)l->cursor + v[1];
	if (at < 0 || at > (__int128)content)
		return v2_fail(l, "a segment reaches past the end of its shard");
	offset = (uint64_t)at;
	if ((uint64_t)v[2] > content - offset)
		return v2_fail(l, "a segment reaches past the end of its shard");
	if (v[3] > SF_SUBST_MAX)
		return v2_fail(l, "a segment has an unknown substitution");
	if (*count == l->seg_capacity) {
		uint32_t cap = l->seg_capacity ? l->seg_capacity * 2 : 64;
		sf_segment *grown = l->seg_capacity >= UINT32_MAX / 4 ? NULL : realloc(l->segs, cap * sizeof(*grown));

		if (!grown)
			return sf_error_set(l->err, SF_ERR_NOMEM, "out of memory");
		l->segs = grown;
		l->seg_capacity = cap;
	}
	s = &l->segs[(*count)++];
	s->shard = (uint32_t)v[0];
	s->shard_offset = offset;
	s->length = (uint64_t)v[2];
	s->subst = (uint8_t)v[3];
	*size += s->length;  /* lengths are below 2^63 each: no wrap in two */
	if (*size > (UINT64_C(1) << 63))
		return v2_fail(l, "a file larger than 2^63 bytes");
	l->cursor = offset + s->length;
	return SF_OK;
}

/* The file's segments, read into the loader's array, kept at their size. */
static sf_err v2_set_segments(v2_loader *l, sf_node *node, uint32_t count, uint64_t size)
{
	if (count > 0) {
		node->segments = alloc_segments(l->arena, count);
		if (!node->segments)
			return sf_error_set(l->err, SF_ERR_NOMEM, "out of memory");
		memcpy(node->segments, l->segs, count * sizeof(sf_segment));
		node->segment_count = count;
		set_segment_starts(node);
	}
	node->size = size;
	return SF_OK;
}

static sf_err v2_set_xxh64(v2_loader *l, sf_node *node, const char *text, size_t len)
{
	char hex[17];

	if (len != 16)
		return v2_fail(l, "expected an xxh64 of 16 hex digits");
	memcpy(hex, text, 16);
	hex[16] = '\0';
	if (!sf_parse_hex64(hex, &node->xxh64))
		return v2_fail(l, "expected an xxh64 of 16 hex digits");
	node->has_xxh64 = 1;
	return SF_OK;
}

/* A folder whose children come from index sub, in dir. */
static sf_err v2_set_index(v2_loader *l, sf_node *dir, sf_node *node, int64_t sub)
{
	if (sub < 0 || sub >= (int64_t)l->store->index_count || (int32_t)sub == l->index_id)
		return v2_fail(l, "expected the children array or the number of another index");
	node->index_id = (int32_t)sub;
	dir->lazy_children = 1;
	return SF_OK;
}

/* A folder whose children follow inline: they are read next, one level
   down. */
static void v2_open_folder(v2_loader *l, sf_node *node, size_t path_len)
{
	node->loaded = 1;
	l->depth++;
	l->path_len[l->depth] = path_len;
}

static sf_err v2_set_target(v2_loader *l, sf_node *node, const char *target, size_t len)
{
	if (len > SF_MAX_PATH_BYTES)
		return v2_fail(l, "expected a link target of at most 4096 bytes");
	node->size = len;
	node->target = malloc(len + 1);
	if (!node->target)
		return sf_error_set(l->err, SF_ERR_NOMEM, "out of memory");
	memcpy(node->target, target, len);
	node->target[len] = '\0';
	return SF_OK;
}

/* ---- the direct reader ---- */

/* The text is NUL-terminated (sf_index_decompress): the NUL at end stops
   every loop below without a bounds check, as nothing takes it. */
typedef struct v2_text {
	const unsigned char *p, *end;
} v2_text;

/* JSON white space: space, tab, line feed, carriage return. */
static const unsigned char text_blank[256] = { [' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\r'] = 1 };

static inline void text_space(v2_text *t)
{
	while (text_blank[*t->p])
		t->p++;
}

/* The next byte after white space, taken; -1 at the end. */
static inline int text_byte(v2_text *t)
{
	text_space(t);
	return t->p < t->end ? *t->p++ : -1;
}

/* 1 and c (not NUL) taken when c comes next after white space. */
static inline int text_take(v2_text *t, unsigned char c)
{
	text_space(t);
	if (*t->p == c) {
		t->p++;
		return 1;
	}
	return 0;
}

/* Bytes a string's scan stops at: '"', '\\', controls and non-ASCII. */
static const unsigned char text_stops[256] = {
	[0 ... 0x1F] = 1, ['"'] = 1, ['\\'] = 1, [0x80 ... 0xFF] = 1,
};

/* A string with no escapes, as its raw bytes; non-ASCII bytes must be
   UTF-8 as RFC 3629 has it (sf_utf8_valid), as the scanner checks them. */
static int text_string(v2_text *t, const char **s, size_t *len)
{
	const unsigned char *p, *start;
	int ascii = 1;

	if (!text_take(t, '"'))
		return 0;
	start = p = t->p;
	for (;;) {
		while (!text_stops[*p])
			p++;
		if (*p == '"')
			break;
		if (*p < 0x80)
			return 0;  /* an escape, a control byte or the end */
		ascii = 0;
		p++;
	}
	if ((size_t)(p - start) > SF_JSCAN_MAX_TEXT || (!ascii && !sf_utf8_valid(start, (size_t)(p - start))))
		return 0;
	*s = (const char *)start;
	*len = (size_t)(p - start);
	t->p = p + 1;
	return 1;
}

/* An integer (no fraction or exponent) that fits in int64: 19 digits
   fit in a uint64_t, and 20 or more never make an int64. */
static inline int text_integer(v2_text *t, int64_t *out)
{
	const unsigned char *p;
	uint64_t value;
	unsigned digit, digits = 1;
	int negative;

	text_space(t);
	p = t->p;
	negative = *p == '-';
	p += negative;
	digit = (unsigned)(*p - '0');
	if (digit > 9)
		return 0;
	value = digit;
	p++;
	if (value == 0) {
		if ((unsigned)(*p - '0') <= 9)
			return 0;  /* a leading zero: not JSON */
	} else {
		while ((digit = (unsigned)(*p - '0')) <= 9) {
			if (++digits > 19)
				return 0;
			value = value * 10 + digit;
			p++;
		}
	}
	if (*p == '.' || *p == 'e' || *p == 'E')
		return 0;
	if (value > (negative ? UINT64_C(1) << 63 : (UINT64_C(1) << 63) - 1))
		return 0;
	*out = negative ? (int64_t)(0 - value) : (int64_t)value;
	t->p = p;
	return 1;
}

/* A number token as int64; 0 when it is not an integer that fits. */
static int v2_integer(const sf_jtok *tok, int64_t *out)
{
	v2_text t;

	if (tok->type != SF_JTOK_NUMBER || !tok->text)
		return 0;
	t.p = (const unsigned char *)tok->text;
	t.end = t.p + tok->text_len;
	/* the token's text is NUL-terminated: text_integer reads it whole */
	return text_integer(&t, out) && t.p == t.end;
}

/* The time of an entry (see v2_scan_time). */
static int text_time(v2_loader *l, v2_text *t, sf_node *node, int allow_null)
{
	int64_t a, b;

	text_space(t);
	if (allow_null && t->end - t->p >= 4 && memcmp(t->p, "null", 4) == 0) {
		t->p += 4;
		v2_set_time_above(node);
		return 1;
	}
	if (text_take(t, '['))
		return text_integer(t, &a) && text_take(t, ',') && text_integer(t, &b) && text_take(t, ']') &&
		       v2_set_time(l, node, a, b) == SF_OK;
	return text_integer(t, &a) && v2_set_time_delta(l, node, a) == SF_OK;
}

static int text_segments(v2_loader *l, v2_text *t, sf_node *node)
{
	uint32_t count = 0;
	uint64_t size = 0;

	if (!text_take(t, '['))
		return 0;
	if (!text_take(t, ']')) {
		for (;;) {
			int64_t v[4];
			int c;

			if (!text_integer(t, &v[0]) || !text_take(t, ',') || !text_integer(t, &v[1]) ||
			    !text_take(t, ',') || !text_integer(t, &v[2]) || !text_take(t, ',') ||
			    !text_integer(t, &v[3]) || v2_set_segment(l, v, &count, &size) != SF_OK)
				return 0;
			c = text_byte(t);
			if (c == ']')
				break;
			if (c != ',')
				return 0;
		}
	}
	return v2_set_segments(l, node, count, size) == SF_OK;
}

/* One entry, after its '['; a folder with inline children is left open in
   *opened, as in v2_scan_entry. */
static int text_entry(v2_loader *l, v2_text *t, sf_node *dir, sf_node **opened)
{
	const char *s, *name;
	size_t len, name_len, path_len;
	sf_node *node;
	int64_t v;
	uint8_t type;

	l->entry++;
	if (!text_string(t, &s, &len) || len != 1)
		return 0;
	if (s[0] == SF_INDEX_FILE[0])
		type = SF_NODE_FILE;
	else if (s[0] == SF_INDEX_DIR[0])
		type = SF_NODE_DIR;
	else if (s[0] == SF_INDEX_SYMLINK[0])
		type = SF_NODE_SYMLINK;
	else
		return 0;
	if (!text_take(t, ',') || !text_string(t, &name, &name_len) ||
	    v2_set_node(l, dir, type, name, name_len, &path_len, &node) != SF_OK || !text_take(t, ','))
		return 0;
	if (type == SF_NODE_FILE) {
		if (!text_integer(t, &v) || v2_set_mode(l, node, v) != SF_OK || !text_take(t, ',') ||
		    !text_time(l, t, node, 0) || !text_take(t, ',') || !text_segments(l, t, node))
			return 0;
		if (text_take(t, ',') && (!text_string(t, &s, &len) || v2_set_xxh64(l, node, s, len) != SF_OK))
			return 0;
	} else if (type == SF_NODE_DIR) {
		if (!text_integer(t, &v) || v2_set_mode(l, node, v) != SF_OK || !text_take(t, ',') ||
		    !text_time(l, t, node, 1) || !text_take(t, ','))
			return 0;
		if (text_take(t, '[')) {
			v2_open_folder(l, node, path_len);
			*opened = node;
			return 1;
		}
		if (!text_integer(t, &v) || v2_set_index(l, dir, node, v) != SF_OK)
			return 0;
	} else {
		if (!text_time(l, t, node, 0) || !text_take(t, ',') || !text_string(t, &s, &len) ||
		    v2_set_target(l, node, s, len) != SF_OK)
			return 0;
	}
	return text_take(t, ']');
}

/* The entries array, after its '['. */
static int text_entries(v2_loader *l, v2_text *t, sf_node *dir)
{
	sf_node *current = dir;

	if (text_take(t, ']'))
		return 1;
	for (;;) {
		sf_node *opened = NULL;
		int c;

		if (!text_take(t, '[') || !text_entry(l, t, current, &opened))
			return 0;
		if (opened) {
			current = opened;
			if (!text_take(t, ']'))
				continue;  /* its first child comes next */
		} else {
			c = text_byte(t);
			if (c == ',')
				continue;
			if (c != ']')
				return 0;
		}
		/* a list of children closed: so does its folder's entry */
		for (;;) {
			if (current == dir)
				return 1;
			if (!text_take(t, ']'))
				return 0;
			current = current->parent;
			l->depth--;
			c = text_byte(t);
			if (c == ',')
				break;
			if (c != ']')
				return 0;
		}
	}
}

/* 1 when the direct reader read the whole index. */
static int text_index(v2_loader *l, const char *text, size_t len, sf_node *dir)
{
	v2_text t = { (const unsigned char *)text, (const unsigned char *)text + len };
	int have_format = 0, have_entries = 0;

	if (text[len] != '\0' || !text_take(&t, '{'))
		return 0;
	for (;;) {
		const char *key, *value;
		size_t key_len, value_len;
		int c;

		if (!text_string(&t, &key, &key_len) || !text_take(&t, ':'))
			return 0;
		if (key_len == 6 && memcmp(key, "format", 6) == 0 && !have_format) {
			if (!text_string(&t, &value, &value_len) || value_len != 12 ||
			    memcmp(value, "stepfs-index", 12) != 0)
				return 0;
			have_format = 1;
		} else if (key_len == 7 && memcmp(key, "entries", 7) == 0 && !have_entries) {
			if (!text_take(&t, '[') || !text_entries(l, &t, dir))
				return 0;
			have_entries = 1;
		} else {
			return 0;
		}
		c = text_byte(&t);
		if (c == '}')
			break;
		if (c != ',')
			return 0;
	}
	text_space(&t);
	return t.p == t.end && have_format && have_entries;
}

/* ---- the scanner's reader ---- */

/* A name or link target at the current position: a string, or ["HEX"]
   for bytes that are not UTF-8. The token after it is read. */
static sf_err v2_scan_bytes(v2_loader *l, char *out, size_t cap, size_t *out_len, const char *what)
{
	sf_err rc = v2_next(l);
	int hex = 0;

	if (rc != SF_OK)
		return rc;
	if (l->tok.type == SF_JTOK_ARRAY_BEGIN) {
		hex = 1;
		if ((rc = v2_next(l)) != SF_OK)
			return rc;
	}
	if (l->tok.type != SF_JTOK_STRING || !l->tok.text)
		return v2_fail(l, what);
	if (hex) {
		size_t i, n = l->tok.text_len / 2;

		if (l->tok.text_len % 2 || n + 1 > cap || n == 0)
			return v2_fail(l, what);
		for (i = 0; i < n; i++) {
			int hi = hex_digit_value(l->tok.text[2 * i]), lo = hex_digit_value(l->tok.text[2 * i + 1]);

			if (hi < 0 || lo < 0 || (hi | lo) == 0)
				return v2_fail(l, what);
			out[i] = (char)(hi << 4 | lo);
		}
		out[n] = '\0';
		*out_len = n;
		if ((rc = v2_next(l)) != SF_OK)
			return rc;
		if (l->tok.type != SF_JTOK_ARRAY_END)
			return v2_fail(l, what);
		return SF_OK;
	}
	if (!v2_unescape(l->tok.text, l->tok.text_len, out, cap, out_len))
		return v2_fail(l, what);
	return SF_OK;
}

/* The next token as an integer; why when it is not one. */
static sf_err v2_scan_integer(v2_loader *l, int64_t *out, const char *why)
{
	sf_err rc = v2_next(l);

	if (rc != SF_OK)
		return rc;
	if (!v2_integer(&l->tok, out))
		return v2_fail(l, why);
	return SF_OK;
}

/* The time of an entry: a difference from the one before, [sec, nsec],
   or (folders only, allow_null) null for the time of the folder above. */
static sf_err v2_scan_time(v2_loader *l, sf_node *node, int allow_null)
{
	sf_err rc = v2_next(l);
	int64_t delta, sec, nsec;

	if (rc != SF_OK)
		return rc;
	if (l->tok.type == SF_JTOK_NULL && allow_null) {
		v2_set_time_above(node);
		return SF_OK;
	}
	if (l->tok.type == SF_JTOK_ARRAY_BEGIN) {
		if ((rc = v2_scan_integer(l, &sec, "expected [seconds, nanoseconds]")) != SF_OK ||
		    (rc = v2_scan_integer(l, &nsec, "expected nanoseconds below 10^9")) != SF_OK)
			return rc;
		if (nsec < 0 || nsec >= 1000000000)
			return v2_fail(l, "expected nanoseconds below 10^9");
		if ((rc = v2_next(l)) != SF_OK)
			return rc;
		if (l->tok.type != SF_JTOK_ARRAY_END)
			return v2_fail(l, "expected [seconds, nanoseconds]");
		return v2_set_time(l, node, sec, nsec);
	}
	if (!v2_integer(&l->tok, &delta))
		return v2_fail(l, "expected a time difference in nanoseconds");
	return v2_set_time_delta(l, node, delta);
}

static sf_err v2_scan_segments(v2_loader *l, sf_node *node)
{
	static const char why[] = "segments are groups of 4 integers [shard, offset difference, length, subst]";
	uint32_t count = 0;
	uint64_t size = 0;
	sf_err rc = v2_next(l);

	if (rc != SF_OK)
		return rc;
	if (l->tok.type != SF_JTOK_ARRAY_BEGIN)
		return v2_fail(l, "expected the segments array");
	for (;;) {
		int64_t v[4];
		int k;

		if ((rc = v2_next(l)) != SF_OK)
			return rc;
		if (l->tok.type == SF_JTOK_ARRAY_END)
			break;
		for (k = 0; k < 4; k++) {
			if (k > 0 && (rc = v2_next(l)) != SF_OK)
				return rc;
			if (!v2_integer(&l->tok, &v[k]) || (k != 1 && v[k] < 0))
				return v2_fail(l, why);
		}
		if ((rc = v2_set_segment(l, v, &count, &size)) != SF_OK)
			return rc;
	}
	return v2_set_segments(l, node, count, size);
}

/* One entry; tok is its '['. A folder with inline children leaves them
   open: *opened is set and the caller reads the children next. */
static sf_err v2_scan_entry(v2_loader *l, sf_node *dir, sf_node **opened)
{
	char name[SF_MAX_PATH_BYTES + 8];
	size_t name_len = 0, path_len;
	sf_node *node;
	int64_t v;
	uint8_t type;
	sf_err rc;

	*opened = NULL;
	l->entry++;
	if ((rc = v2_next(l)) != SF_OK)
		return rc;
	if (l->tok.type != SF_JTOK_STRING || l->tok.text_len != 1 ||
	    !strchr(SF_INDEX_FILE SF_INDEX_DIR SF_INDEX_SYMLINK, l->tok.text[0]))
		return v2_fail(l, "expected a type \"f\", \"d\" or \"l\"");
	type = l->tok.text[0] == SF_INDEX_FILE[0] ? SF_NODE_FILE
	       : l->tok.text[0] == SF_INDEX_DIR[0] ? SF_NODE_DIR : SF_NODE_SYMLINK;
	if ((rc = v2_scan_bytes(l, name, sizeof(name), &name_len, "expected a name of 1 to 255 bytes")) != SF_OK ||
	    (rc = v2_set_node(l, dir, type, name, name_len, &path_len, &node)) != SF_OK)
		return rc;
	if (type == SF_NODE_FILE) {
		if ((rc = v2_scan_integer(l, &v, "expected a mode from 0 to 07777")) != SF_OK ||
		    (rc = v2_set_mode(l, node, v)) != SF_OK || (rc = v2_scan_time(l, node, 0)) != SF_OK ||
		    (rc = v2_scan_segments(l, node)) != SF_OK || (rc = v2_next(l)) != SF_OK)
			return rc;
		if (l->tok.type == SF_JTOK_STRING) {
			if (!l->tok.text)
				return v2_fail(l, "expected an xxh64 of 16 hex digits");
			if ((rc = v2_set_xxh64(l, node, l->tok.text, l->tok.text_len)) != SF_OK ||
			    (rc = v2_next(l)) != SF_OK)
				return rc;
		}
	} else if (type == SF_NODE_DIR) {
		if ((rc = v2_scan_integer(l, &v, "expected a mode from 0 to 07777")) != SF_OK ||
		    (rc = v2_set_mode(l, node, v)) != SF_OK || (rc = v2_scan_time(l, node, 1)) != SF_OK ||
		    (rc = v2_next(l)) != SF_OK)
			return rc;
		if (l->tok.type == SF_JTOK_ARRAY_BEGIN) {
			v2_open_folder(l, node, path_len);
			*opened = node;
			return SF_OK;
		}
		if (!v2_integer(&l->tok, &v))
			return v2_fail(l, "expected the children array or the number of another index");
		if ((rc = v2_set_index(l, dir, node, v)) != SF_OK || (rc = v2_next(l)) != SF_OK)
			return rc;
	} else {
		char target[SF_MAX_PATH_BYTES + 8];
		size_t target_len = 0;

		if ((rc = v2_scan_time(l, node, 0)) != SF_OK ||
		    (rc = v2_scan_bytes(l, target, sizeof(target), &target_len,
					"expected a link target of at most 4096 bytes")) != SF_OK ||
		    (rc = v2_set_target(l, node, target, target_len)) != SF_OK || (rc = v2_next(l)) != SF_OK)
			return rc;
	}
	if (l->tok.type != SF_JTOK_ARRAY_END)
		return v2_fail(l, "expected the end of the entry");
	return SF_OK;
}

/* The entries array; tok is its '['. Folders nest without recursion. */
static sf_err v2_scan_entries(v2_loader *l, sf_node *dir)
{
	sf_node *current = dir;
	sf_err rc;

	for (;;) {
		sf_node *opened = NULL;

		if ((rc = v2_next(l)) != SF_OK)
			return rc;
		if (l->tok.type == SF_JTOK_ARRAY_END) {
			if (current == dir)
				return SF_OK;
			/* the children closed: the folder's entry closes next */
			if ((rc = v2_next(l)) != SF_OK)
				return rc;
			if (l->tok.type != SF_JTOK_ARRAY_END)
				return v2_fail(l, "expected the end of the folder entry after its children");
			current = current->parent;
			l->depth--;
			continue;
		}
		if (l->tok.type != SF_JTOK_ARRAY_BEGIN)
			return v2_fail(l, "expected an entry array");
		if ((rc = v2_scan_entry(l, current, &opened)) != SF_OK)
			return rc;
		if (opened)
			current = opened;
	}
}

static sf_err v2_scan_index(v2_loader *l, const char *text, size_t len, sf_node *dir)
{
	/* a path of 4096 bytes has at most 2048 folders, each two levels deep */
	sf_jscan_options options = { SF_MAX_PATH_BYTES + 16, 1, 0, 0 };
	const char *shown = l->shown;
	sf_error *err = l->err;
	int have_format = 0, have_entries = 0;
	sf_err rc;

	rc = sf_jscan_open_mem(&l->scan, text, len, shown, &options, err);
	if (rc == SF_OK)
		rc = v2_next(l);
	if (rc == SF_OK && l->tok.type != SF_JTOK_OBJECT_BEGIN)
		rc = sf_error_set(err, SF_ERR_CORRUPT, "'%s': byte %" PRIu64 ": expected an object", shown, l->tok.start);
	while (rc == SF_OK) {
		if ((rc = v2_next(l)) != SF_OK)
			break;
		if (l->tok.type == SF_JTOK_OBJECT_END)
			break;
		if (l->tok.type == SF_JTOK_KEY && l->tok.text && strcmp(l->tok.text, "format") == 0) {
			if ((rc = v2_next(l)) != SF_OK)
				break;
			if (l->tok.type != SF_JTOK_STRING || !l->tok.text || strcmp(l->tok.text, "stepfs-index") != 0)
				rc = sf_error_set(err, SF_ERR_CORRUPT, "'%s': byte %" PRIu64 ": expected \"stepfs-index\"",
						  shown, l->tok.start);
			have_format = 1;
		} else if (l->tok.type == SF_JTOK_KEY && l->tok.text && strcmp(l->tok.text, "entries") == 0) {
			if ((rc = v2_next(l)) != SF_OK)
				break;
			if (l->tok.type != SF_JTOK_ARRAY_BEGIN)
				rc = sf_error_set(err, SF_ERR_CORRUPT, "'%s': byte %" PRIu64 ": expected the entries array",
						  shown, l->tok.start);
			else
				rc = v2_scan_entries(l, dir);
			have_entries = 1;
		} else {
			/* keys a later minor version adds */
			rc = sf_jscan_skip_value(l->scan, NULL, NULL, NULL, err);
		}
	}
	if (rc == SF_OK && (rc = v2_next(l)) == SF_OK && l->tok.type != SF_JTOK_EOF)
		rc = sf_error_set(err, SF_ERR_CORRUPT, "'%s': byte %" PRIu64 ": expected the end", shown, l->tok.start);
	if (rc == SF_OK && (!have_format || !have_entries))
		rc = sf_error_set(err, SF_ERR_CORRUPT, "'%s': expected \"format\" and \"entries\"", shown);
	sf_jscan_free(l->scan);
	l->scan = NULL;
	return rc;
}

/* Forget what a reader that gave up built in dir (nothing else is there
   yet): its memory goes back as for a failed load. */
static void v2_forget(sf_store *store, load_arena *arena, sf_node *dir, uint8_t lazy_children)
{
	pthread_mutex_lock(&store->tree_lock);
	unload_nodes(store, dir, arena->nodes, arena->node_count, arena->pieces, arena->blocks);
	pthread_mutex_unlock(&store->tree_lock);
	arena->next = NULL;
	arena->left = 0;
	arena->pieces = arena->blocks = NULL;
	arena->bytes = 0;
	arena->nodes = NULL;
	arena->node_count = arena->node_capacity = 0;
	dir->lazy_children = lazy_children;
}

static void v2_loader_init(v2_loader *l, sf_store *store, load_arena *arena, int32_t index_id, const char *shown,
			   size_t *path_len, sf_error *err)
{
	memset(l, 0, sizeof(*l));
	l->store = store;
	l->arena = arena;
	l->shown = shown;
	l->index_id = index_id;
	l->err = err;
	l->path_len = path_len;
	path_len[0] = 0;
}

static sf_err load_index_v2(sf_store *store, load_arena *arena, sf_node *dir, int32_t index_id,
			    const char *shown, const char *text, size_t len, sf_error *err)
{
	size_t *path_len = calloc(SF_MAX_PATH_BYTES / 2 + 2, sizeof(*path_len));
	uint8_t lazy_children = dir->lazy_children;
	v2_loader l;
	sf_err rc;

	if (!path_len)
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	v2_loader_init(&l, store, arena, index_id, shown, path_len, err);
	if (!store->scanner_only && text_index(&l, text, len, dir)) {
		free(l.segs);
		free(path_len);
		return SF_OK;
	}
	free(l.segs);
	v2_forget(store, arena, dir, lazy_children);
	__atomic_add_fetch(&store->scanned, 1, __ATOMIC_RELAXED);
	v2_loader_init(&l, store, arena, index_id, shown, path_len, err);
	rc = v2_scan_index(&l, text, len, dir);
	if (rc != SF_OK && rc != SF_ERR_NOMEM && rc != SF_ERR_LIMIT) {
		rc = SF_ERR_CORRUPT;  /* a damaged index, as for 1.0 */
		if (err)
			err->code = rc;
	}
	free(l.segs);
	free(path_len);
	return rc;
}

static sf_err load_index_into(sf_store *store, load_arena *arena, sf_node *dir, int32_t index_id,
			      sf_error *err)
{
	index_doc *doc = &store->indexes[index_id];
	char *full = sf_path_join(store->path, doc->file);
	char *text = NULL;
	size_t text_len = 0, i;
	json_t *root = NULL, *entries;
	load_map map = { NULL, 0, 0, arena };
	/* the index file and its text: megabytes, read once, in huge pages */
	sf_arena scratch = { 0 };
	sf_err rc;

	if (!full)
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	rc = read_whole_file(full, full, SF_MAX_METADATA_BYTES, &scratch, &text, &text_len, err);
	/* a store lacking one of its own files is damaged, as for shards */
	if (rc == SF_ERR_NOTFOUND)
		rc = sf_error_set(err, SF_ERR_CORRUPT, "'%s': index missing", full);
	if (rc != SF_OK)
		goto out;
	if (doc->has_xxh64 && sf_xxh64(text, text_len, 0) != doc->xxh64) {
		rc = sf_error_set(err, SF_ERR_CORRUPT, "'%s': checksum mismatch (index damaged)", full);
		goto out;
	}
	if (store->major >= 2) {
		char *plain = NULL;
		size_t plain_len = 0;

		rc = sf_index_decompress(text, text_len, SF_MAX_METADATA_BYTES, full, &scratch, &plain, &plain_len,
					 err);
		if (rc == SF_OK)
			rc = load_index_v2(store, arena, dir, index_id, full, plain, plain_len, err);
		if (rc == SF_OK)
			goto sort;
		goto out;
	}
	rc = parse_json(text, text_len, full, &root, err);
	if (rc != SF_OK)
		goto out;
	entries = json_object_get(root, "entries");
	if (!json_is_array(entries)) {
		rc = sf_error_set(err, SF_ERR_CORRUPT, "'%s': expected an \"entries\" array", full);
		goto out;
	}
	map.capacity = 64;
	while (map.capacity < json_array_size(entries) * 4 + 64)
		map.capacity *= 2;
	map.slots = calloc(map.capacity, sizeof(*map.slots));
	if (!map.slots) {
		rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < json_array_size(entries); i++) {
		json_t *entry = json_array_get(entries, i);
		char *path = entry_bytes(entry, "path", "path_hex");
		const char *type = get_string(entry, "type");
		const char *why = NULL, *name = NULL;
		size_t name_len = 0;
		sf_node *parent, *node;
		uint64_t mode = 0;

		if (!path || !safe_relative_path(path) || !type) {
			free(path);
			rc = sf_error_set(err, SF_ERR_CORRUPT, "'%s': entry %zu: expected a safe relative path and a type",
					  full, i);
			goto out;
		}
		parent = parent_for(store, &map, dir, path, &name, &name_len);
		if (!parent || find_loading_child(&map, parent, name, name_len)) {
			rc = sf_error_set(err, SF_ERR_CORRUPT, "'%s': entry %zu ('%s'): duplicate or misplaced path",
					  full, i, path);
			free(path);
			goto out;
		}
		node = add_child(map.arena, parent, name, name_len);
		if (!node) {
			free(path);
			rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
			goto out;
		}
		if (!remember_child(&map, node)) {
			free(path);
			rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
			goto out;
		}
		node->mode = 0644;
		if (get_u64(entry, "mode", &mode))
			node->mode = (uint32_t)(mode & 07777);
		if (!parse_mtime(entry, node))
			why = "bad \"mtime\"";
		if (!why && strcmp(type, "dir") == 0) {
			uint64_t sub = 0;

			node->type = SF_NODE_DIR;
			if (!json_object_get(entry, "mode"))
				node->mode = 0755;
			if (get_u64(entry, "index", &sub)) {
				if (sub >= store->index_count || (int32_t)sub == index_id)
					why = "\"index\" names no other index";
				node->index_id = (int32_t)sub;
				node->parent->lazy_children = 1;
			} else {
				node->loaded = 1;
			}
		} else if (!why && strcmp(type, "file") == 0) {
			const char *hash = get_string(entry, "xxh64");

			node->type = SF_NODE_FILE;
			if (!get_u64(entry, "size", &node->size))
				why = "expected \"size\"";
			else
				parse_segments(store, map.arena, json_object_get(entry, "segments"), node, &why);
			if (!why && hash) {
				if (!sf_parse_hex64(hash, &node->xxh64))
					why = "bad \"xxh64\"";
				node->has_xxh64 = 1;
			}
		} else if (!why && strcmp(type, "symlink") == 0) {
			node->type = SF_NODE_SYMLINK;
			node->mode = 0777;
			node->target = entry_bytes(entry, "target", "target_hex");
			if (!node->target)
				why = "expected \"target\"";
			else
				node->size = strlen(node->target);
		} else if (!why) {
			why = "unknown \"type\"";
		}
		if (why) {
			rc = sf_error_set(err, SF_ERR_CORRUPT, "'%s': entry %zu ('%s'): %s", full, i, path, why);
			free(path);
			goto out;
		}
		free(path);
	}
sort:
	{
		const sf_node *duplicate = NULL;

		if (!sort_tree(dir, &duplicate) && !duplicate) {
			rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		} else if (duplicate) {
			char dup_path[SF_MAX_PATH_BYTES];

			sf_store_node_path(duplicate, dup_path, sizeof(dup_path));
			rc = sf_error_set(err, SF_ERR_CORRUPT, "'%s': '%s' is listed twice", full, dup_path);
		}
	}
out:
	free(map.slots);
	if (root)
		json_decref(root);
	sf_arena_free(&scratch);
	free(full);
	return rc;
}

/* ---- loads, pins and drops ---------------------------------------------
 *
 * Loads of different folders run at once (a walker opens one big folder
 * while the next ones load on other threads); each builds its nodes
 * outside the tree lock (see load_arena). A second reader of a folder
 * being loaded waits for that load; a load ahead of need leaves it alone.
 *
 * An index's refs count its pins and its loaded indexes below (whose
 * folder nodes it holds). A count goes from 0 to 1 only under the tree
 * lock, and an index is dropped only under it with a count of 0, so a
 * pin taken there or on top of another pin keeps the nodes valid.
 */

/* The index that made a node; -1 for the root. */
static int32_t node_home(const sf_node *node)
{
	return (int32_t)(node->ino >> 32) - 1;
}

static void pin_locked(sf_store *store, int32_t id)
{
	__atomic_add_fetch(&store->indexes[id].refs, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&store->indexes[id].used, __atomic_add_fetch(&store->tick, 1, __ATOMIC_RELAXED),
			 __ATOMIC_RELAXED);
}

/* The index holding the folder that shows index id: -1 for the root. */
static int32_t index_above(const index_doc *doc)
{
	return (int32_t)(doc->owner_ino >> 32) - 1;
}

/* The folder that shows loaded index id; its index stays loaded while
   id is (see refs). */
static sf_node *index_owner(sf_store *store, int32_t id)
{
	int32_t above = index_above(&store->indexes[id]);

	return above < 0 ? &store->root : store->indexes[above].nodes[(uint32_t)store->indexes[id].owner_ino];
}

/* Give back what one load of dir's index made: what its nodes hold from
   malloc (children arrays, the nodes of other indexes below being gone
   by then, and symlink targets), dir's children array, the load's pieces
   and blocks and its node table. Tree lock held. */
static void unload_nodes(sf_store *store, sf_node *dir, sf_node **nodes, uint32_t count, void *pieces,
			 void *blocks)
{
	uint32_t i;

	for (i = 0; i < count; i++) {
		free(nodes[i]->children);
		free(nodes[i]->target);
	}
	free(dir->children);
	dir->children = NULL;
	dir->child_count = 0;
	dir->child_capacity = 0;
	load_memory_free(store, pieces, blocks);
	free(nodes);
}

/* Drop loaded index id (refs 0, not the root's); tree lock held. */
static void drop_index(sf_store *store, int32_t id)
{
	index_doc *doc = &store->indexes[id];
	sf_node *owner = index_owner(store, id);

	__atomic_store_n(&owner->loaded, 0, __ATOMIC_RELEASE);
	owner->lazy_children = 0;
	unload_nodes(store, owner, doc->nodes, doc->node_count, doc->pieces, doc->blocks);
	doc->nodes = NULL;
	doc->node_count = 0;
	doc->pieces = NULL;
	doc->blocks = NULL;
	doc->state = INDEX_UNLOADED;
	__atomic_store_n(&store->metadata_bytes, store->metadata_bytes - doc->bytes, __ATOMIC_RELAXED);
	doc->bytes = 0;
	store->drops++;
	store->resident--;
	if (index_above(doc) >= 0)
		__atomic_sub_fetch(&store->indexes[index_above(doc)].refs, 1, __ATOMIC_RELEASE);
}

/* Drop the least recently used unpinned indexes while the loaded ones
   (and extra bytes of a load under way) hold more than the budget; tree
   lock held. The most recently used index
   stays even when it alone is over the budget: a reader going through
   one big folder, a file at a time, would otherwise load it again at
   every file. It goes to make room for a load, which will be the most
   recently used one. */
static void drop_over_budget(sf_store *store, size_t extra)
{
	while (store->metadata_budget && store->metadata_bytes + extra > store->metadata_budget) {
		int32_t victim = -1;
		uint64_t oldest = UINT64_MAX, newest = 0;
		uint32_t i;

		for (i = 0; i < store->index_count; i++) {
			const index_doc *doc = &store->indexes[i];
			uint64_t used = __atomic_load_n(&doc->used, __ATOMIC_RELAXED);

			if (doc->state != INDEX_LOADED)
				continue;
			if (used > newest)
				newest = used;
			if (__atomic_load_n(&doc->refs, __ATOMIC_ACQUIRE) == 0 && used < oldest) {
				victim = (int32_t)i;
				oldest = used;
			}
		}
		if (victim < 0 || (oldest == newest && !extra))
			return;
		drop_index(store, victim);
	}
}

/* Over the budget, any unpin may free an index: this one, or the one
   that was the most recently used until this pin. */
static void unpin(sf_store *store, int32_t id)
{
	if (id < 0)
		return;
	__atomic_sub_fetch(&store->indexes[id].refs, 1, __ATOMIC_ACQ_REL);
	if (store->metadata_budget &&
	    __atomic_load_n(&store->metadata_bytes, __ATOMIC_RELAXED) > store->metadata_budget) {
		pthread_mutex_lock(&store->tree_lock);
		drop_over_budget(store, 0);
		pthread_mutex_unlock(&store->tree_lock);
	}
}

/* Folders a load made that show indexes of their own: each index is
   shown by one folder only (else the tree could loop), and a folder made
   again after a drop is the same one. Tree lock held. */
static sf_err adopt_subindexes(sf_store *store, const load_arena *arena, sf_error *err)
{
	unsigned char *seen = NULL;
	sf_err rc = SF_OK;
	uint32_t i;

	for (i = 0; i < arena->node_count && rc == SF_OK; i++) {
		const sf_node *n = arena->nodes[i];
		uint32_t id;

		if (n->type != SF_NODE_DIR || n->index_id < 0)
			continue;
		id = (uint32_t)n->index_id;
		if (!seen && !(seen = calloc(store->index_count / 8 + 1, 1)))
			return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		if ((seen[id / 8] & (1u << (id % 8))) ||
		    (store->indexes[id].owner_ino && store->indexes[id].owner_ino != n->ino)) {
			char path[SF_MAX_PATH_BYTES];

			sf_store_node_path(n, path, sizeof(path));
			rc = sf_error_set(err, SF_ERR_CORRUPT,
					  "'%s/%s': folder '/%s' shows index %u, which another folder shows",
					  store->path, store->indexes[arena->index_id].file, path, id);
		}
		seen[id / 8] |= (unsigned char)(1u << (id % 8));
	}
	free(seen);
	if (rc != SF_OK)
		return rc;
	for (i = 0; i < arena->node_count; i++) {
		sf_node *n = arena->nodes[i];

		if (n->type != SF_NODE_DIR || n->index_id < 0)
			continue;
		store->indexes[n->index_id].owner_ino = n->ino;
		n->load_error = store->indexes[n->index_id].error;
	}
	return SF_OK;
}

/* What a loaded index holds: its pieces and blocks, the position table,
   children arrays and link targets. */
static size_t loaded_bytes(const load_arena *arena, const sf_node *dir)
{
	size_t bytes = arena->bytes + (size_t)arena->node_capacity * sizeof(sf_node *) +
		       (size_t)dir->child_capacity * sizeof(sf_node *);
	uint32_t i;

	for (i = 0; i < arena->node_count; i++) {
		const sf_node *n = arena->nodes[i];

		bytes += (size_t)n->child_capacity * sizeof(sf_node *);
		if (n->target)
			bytes += n->size + 1;
	}
	return bytes;
}

/* Make sure dir's children are loaded; with pin, pin the index they live
   in. The caller holds dir. */
static sf_err load_dir(sf_store *store, const sf_node *const_dir, int pin, int ahead, sf_error *err)
{
	sf_node *dir = (sf_node *)(uintptr_t)const_dir; /* loading fills a shared node */
	load_arena arena;
	index_doc *doc;
	int32_t id;
	sf_err rc = SF_OK;

	if (dir->type != SF_NODE_DIR)
		return sf_error_set(err, SF_ERR_INVALID, "not a directory");
	if (dir->index_id < 0) {
		/* its children came with it */
		if (pin)
			sf_store_hold(store, dir);
		return SF_OK;
	}
	if (!pin && __atomic_load_n(&dir->loaded, __ATOMIC_ACQUIRE))
		return SF_OK;
	id = dir->index_id;
	doc = &store->indexes[id];
	pthread_mutex_lock(&store->tree_lock);
	while (doc->state == INDEX_LOADING && !ahead)
		pthread_cond_wait(&store->tree_loaded, &store->tree_lock);
	if (doc->state != INDEX_UNLOADED) {
		/* loaded, or (ahead of need) being loaded by another thread */
		if (pin && doc->state == INDEX_LOADED)
			pin_locked(store, id);
		pthread_mutex_unlock(&store->tree_lock);
		return SF_OK;
	}
	if (doc->error != SF_OK) {
		char path[SF_MAX_PATH_BYTES];

		if (ahead) {
			/* reported already, by whoever tried first */
			pthread_mutex_unlock(&store->tree_lock);
			return SF_OK;
		}
		rc = doc->error;
		sf_store_node_path(dir, path, sizeof(path));
		sf_error_set(err, rc, "'%s/%s': index of '/%s' is damaged (see earlier message)",
			     store->path, doc->file, path);
		pthread_mutex_unlock(&store->tree_lock);
		return rc;
	}
	doc->state = INDEX_LOADING;
	pthread_mutex_unlock(&store->tree_lock);

	memset(&arena, 0, sizeof(arena));
	arena.store = store;
	arena.index_id = id;
	rc = load_index_into(store, &arena, dir, id, err);

	pthread_mutex_lock(&store->tree_lock);
	if (rc == SF_OK)
		rc = adopt_subindexes(store, &arena, err);
	if (rc != SF_OK) {
		/* drop what was half-built; the failure is remembered */
		unload_nodes(store, dir, arena.nodes, arena.node_count, arena.pieces, arena.blocks);
		doc->state = INDEX_UNLOADED;
		doc->error = rc;
		__atomic_store_n(&dir->load_error, rc, __ATOMIC_RELAXED);
		store->index_failures++;
	} else {
		doc->nodes = arena.nodes;
		doc->node_count = arena.node_count;
		doc->pieces = arena.pieces;
		doc->blocks = arena.blocks;
		doc->bytes = loaded_bytes(&arena, dir);
		doc->state = INDEX_LOADED;
		if (node_home(dir) >= 0)
			__atomic_add_fetch(&store->indexes[node_home(dir)].refs, 1, __ATOMIC_RELAXED);
		if (pin)
			pin_locked(store, id);
		else
			__atomic_store_n(&doc->used, __atomic_add_fetch(&store->tick, 1, __ATOMIC_RELAXED),
					 __ATOMIC_RELAXED);
		__atomic_store_n(&store->metadata_bytes, store->metadata_bytes + doc->bytes, __ATOMIC_RELAXED);
		store->indexes_loaded++;
		store->resident++;
		__atomic_store_n(&dir->loaded, 1, __ATOMIC_RELEASE);
		drop_over_budget(store, 0);
	}
	pthread_cond_broadcast(&store->tree_loaded);
	pthread_mutex_unlock(&store->tree_lock);
#ifdef __GLIBC__
	/* the index text and the loader's tables are freed by now; the holes
	   they leave in the heap would otherwise stay resident for as long
	   as the mount */
	if (rc == SF_OK)
		malloc_trim(0);
#endif
	return rc;
}

sf_err sf_store_load_dir(sf_store *store, const sf_node *dir, sf_error *err)
{
	return load_dir(store, dir, 0, 0, err);
}

sf_err sf_store_load_dir_ahead(sf_store *store, const sf_node *dir, sf_error *err)
{
	return load_dir(store, dir, 0, 1, err);
}

sf_err sf_store_open_dir(sf_store *store, const sf_node *dir, sf_error *err)
{
	return load_dir(store, dir, 1, 0, err);
}

void sf_store_close_dir(sf_store *store, const sf_node *dir)
{
	unpin(store, dir->index_id >= 0 ? dir->index_id : node_home(dir));
}

void sf_store_hold(sf_store *store, const sf_node *node)
{
	int32_t id = node_home(node);

	if (id >= 0)
		pin_locked(store, id); /* from 1 up: no lock needed */
}

void sf_store_release(sf_store *store, const sf_node *node)
{
	unpin(store, node_home(node));
}

static sf_err no_such_node(const sf_store *store, uint64_t ino, sf_error *err)
{
	return sf_error_set(err, SF_ERR_NOTFOUND, "inode %" PRIu64 ": no such node in '%s'", ino, store->path);
}

/* Load (if need be) and pin index id, loading the indexes above it that
   were dropped, top down, each pinned until the one below holds it. */
static sf_err pin_index(sf_store *store, int32_t id, uint64_t ino, sf_error *err)
{
	int32_t held = -1;
	sf_err rc = SF_OK;

	for (;;) {
		int32_t x = id, below = -1;
		uint32_t steps = 0, at;
		const sf_node *owner = NULL;

		pthread_mutex_lock(&store->tree_lock);
		while (store->indexes[x].state != INDEX_LOADED) {
			below = x;
			x = index_above(&store->indexes[below]);
			if (!store->indexes[below].owner_ino || x < 0 || (uint32_t)x >= store->index_count ||
			    ++steps > store->index_count) {
				rc = no_such_node(store, ino, err);
				break;
			}
		}
		if (rc == SF_OK && below < 0) {
			pin_locked(store, id);
			pthread_mutex_unlock(&store->tree_lock);
			break;
		}
		if (rc == SF_OK) {
			at = (uint32_t)store->indexes[below].owner_ino;
			if (at < store->indexes[x].node_count) {
				/* keeps the folder's node while its index loads */
				pin_locked(store, x);
				owner = store->indexes[x].nodes[at];
			} else {
				rc = no_such_node(store, ino, err);
			}
		}
		pthread_mutex_unlock(&store->tree_lock);
		if (rc != SF_OK)
			break;
		unpin(store, held);
		held = x;
		rc = load_dir(store, owner, 1, 0, err);
		unpin(store, held);
		held = -1;
		if (rc != SF_OK)
			break;
		held = below;
	}
	unpin(store, held);
	return rc;
}

sf_err sf_store_get(sf_store *store, uint64_t ino, const sf_node **out, sf_error *err)
{
	uint64_t high = ino >> 32;
	const index_doc *doc;
	int32_t id;
	sf_err rc;

	*out = NULL;
	if (ino == 1) {
		*out = &store->root;
		return SF_OK;
	}
	if (high == 0 || high > store->index_count)
		return no_such_node(store, ino, err);
	id = (int32_t)(high - 1);
	rc = pin_index(store, id, ino, err);
	if (rc != SF_OK)
		return rc;
	doc = &store->indexes[id];
	if ((uint32_t)ino >= doc->node_count) {
		unpin(store, id);
		return no_such_node(store, ino, err);
	}
	*out = doc->nodes[(uint32_t)ino];
	return SF_OK;
}

int sf_store_dir_pending(const sf_node *dir)
{
	return dir->type == SF_NODE_DIR && dir->index_id >= 0 &&
	       !__atomic_load_n(&dir->loaded, __ATOMIC_ACQUIRE) &&
	       __atomic_load_n(&dir->load_error, __ATOMIC_RELAXED) == SF_OK;
}

const sf_node *sf_store_child(const sf_node *dir, const char *name)
{
	uint32_t lo = 0, hi;

	if (!__atomic_load_n(&dir->loaded, __ATOMIC_ACQUIRE))
		return NULL;
	hi = dir->child_count;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = strcmp(dir->children[mid]->name, name);

		if (c == 0)
			return dir->children[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

sf_err sf_store_lookup(sf_store *store, const char *path, const sf_node **out,
		       sf_error *err)
{
	const sf_node *node = &store->root;
	char name[SF_MAX_NAME_BYTES + 1];

	while (*path == '/')
		path++;
	while (*path) {
		const char *slash = strchr(path, '/');
		size_t len = slash ? (size_t)(slash - path) : strlen(path);
		sf_err rc;

		if (len > SF_MAX_NAME_BYTES)
			return sf_error_set(err, SF_ERR_NOTFOUND, "'%s': name too long", path);
		if (node->type != SF_NODE_DIR)
			return sf_error_set(err, SF_ERR_NOTFOUND, "'%s': not found", path);
		rc = sf_store_load_dir(store, node, err);
		if (rc != SF_OK)
			return rc;
		memcpy(name, path, len);
		name[len] = '\0';
		node = sf_store_child(node, name);
		if (!node)
			return sf_error_set(err, SF_ERR_NOTFOUND, "'%s': not found", path);
		path += len;
		while (*path == '/')
			path++;
	}
	*out = node;
	return SF_OK;
}

void sf_store_node_path(const sf_node *node, char *buf, size_t size)
{
	const sf_node *chain[256];
	size_t depth = 0, used = 0;

	if (size == 0)
		return;
	buf[0] = '\0';
	while (node && node->parent && depth < 256) {
		chain[depth++] = node;
		node = node->parent;
	}
	while (depth-- > 0) {
		int n = snprintf(buf + used, size - used, "%s%s", used ? "/" : "", chain[depth]->name);

		if (n < 0 || (size_t)n >= size - used)
			return;
		used += (size_t)n;
	}
}

/* ---- shards and reads -------------------------------------------------- */

/* Give a shard's reader its dictionary, checked against store.json. On
   failure the reader is freed and the error kept for every later read. */
static int ends_with(const char *text, const char *suffix)
{
	size_t n = strlen(text), k = strlen(suffix);

	return n >= k && strcmp(text + n - k, suffix) == 0;
}

static sf_err shard_load_dictionary(sf_store *store, shard *s, const char *shard_path)
{
	char *full = sf_path_join(store->path, s->dict_file);
	char *dict = NULL;
	size_t len = 0;
	sf_err rc;

	if (!full) {
		rc = sf_error_set(&s->open_error, SF_ERR_NOMEM, "out of memory");
		goto out;
	}
	rc = read_whole_file(full, full, SF_SEEK_MAX_FRAME_BYTES, NULL, &dict, &len, &s->open_error);
	if (rc == SF_ERR_NOTFOUND)
		rc = sf_error_set(&s->open_error, SF_ERR_CORRUPT,
				  "'%s': dictionary missing (shard '%s' cannot be read without it)",
				  full, shard_path);
	else if (rc == SF_OK && sf_xxh64(dict, len, 0) != s->dict_xxh64)
		rc = sf_error_set(&s->open_error, SF_ERR_CORRUPT,
				  "'%s': checksum mismatch (dictionary damaged; shard '%s' cannot be read)",
				  full, shard_path);
	if (rc == SF_OK && ends_with(s->dict_file, SF_DICT_ZST_SUFFIX)) {
		/* format 2.2: the dictionary as one zstd frame */
		char *plain = NULL;
		size_t plain_len = 0;

		rc = sf_index_decompress(dict, len, SF_SEEK_MAX_FRAME_BYTES, full, NULL, &plain, &plain_len,
					 &s->open_error);
		/* no writer makes one that large: the shard is damaged, as
		   for any other dictionary that cannot be used (EIO in a
		   mount; verify reports the shard damaged) */
		if (rc == SF_ERR_LIMIT)
			rc = s->open_error.code = SF_ERR_CORRUPT;
		if (rc == SF_OK) {
			free(dict);
			dict = plain;
			len = plain_len;
		}
	}
	if (rc == SF_OK)
		rc = sf_seek_reader_set_dictionary(s->reader, dict, len, full, &s->open_error);
out:
	if (rc != SF_OK) {
		sf_seek_reader_free(s->reader);
		s->reader = NULL;
	}
	free(dict);
	free(full);
	return rc;
}

static sf_err shard_reader(sf_store *store, uint32_t id, sf_seek_reader **out, sf_error *err)
{
	shard *s = &store->shards[id];
	sf_err rc = SF_OK;

	if (__atomic_load_n(&s->opened, __ATOMIC_ACQUIRE)) {
		if (!s->reader) {
			if (err)
				*err = s->open_error;
			return s->open_error.code;
		}
		*out = s->reader;
		return SF_OK;
	}
	pthread_mutex_lock(&store->shard_lock);
	if (!s->opened) {
		char *full = sf_path_join(store->path, s->file);

		if (!full) {
			rc = sf_error_set(&s->open_error, SF_ERR_NOMEM, "out of memory");
		} else {
			/* not blocked by a FIFO; the reader refuses non-regular files */
			s->fd = open(full, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
			if (s->fd < 0)
				rc = errno == ENOENT
					? sf_error_set(&s->open_error, SF_ERR_CORRUPT, "'%s': shard missing", full)
					: sf_error_io(&s->open_error, errno, "'%s': cannot open shard", full);
			else
				rc = sf_seek_reader_open(&s->reader, s->fd, full, &s->open_error);
			if (rc == SF_OK && s->dict_file)
				rc = shard_load_dictionary(store, s, full);
			if (rc == SF_OK &&
			    (sf_seek_reader_content_size(s->reader) != s->content_bytes ||
			     sf_seek_reader_frame_count(s->reader) != s->frames)) {
				rc = sf_error_set(&s->open_error, SF_ERR_CORRUPT,
						  "'%s': seek table lists %u frames and %" PRIu64
						  " bytes, the store expects %u frames and %" PRIu64 " bytes",
						  full, sf_seek_reader_frame_count(s->reader),
						  sf_seek_reader_content_size(s->reader), s->frames,
						  s->content_bytes);
				sf_seek_reader_free(s->reader);
				s->reader = NULL;
			}
			free(full);
		}
		__atomic_store_n(&s->opened, 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&store->shard_lock);
	if (!s->reader) {
		if (err)
			*err = s->open_error;
		return s->open_error.code ? s->open_error.code : SF_ERR_CORRUPT;
	}
	*out = s->reader;
	return rc == SF_OK ? SF_OK : rc;
}

typedef struct fill_context {
	sf_store *store;
	sf_seek_reader *reader;
} fill_context;

static sf_err fill_frame(void *context, uint32_t shard_id, uint32_t frame,
			 unsigned char *dst, size_t capacity, sf_error *err)
{
	fill_context *fc = context;

	(void)shard_id;
	return sf_seek_reader_read_frame(fc->reader, frame, dst, capacity, err);
}

static sf_cache_entry *get_frame(sf_store *store, uint32_t shard_id, uint32_t frame,
				 sf_seek_reader *reader, int sequential, sf_error *err)
{
	sf_seek_frame info;
	fill_context fc = { store, reader };

	sf_seek_reader_frame(reader, frame, &info);
	return (sequential ? sf_cache_get_streaming : sf_cache_get)(store->cache, shard_id, frame,
								    info.decompressed_size,
								    fill_frame, &fc, err);
}

static void copy_substituted(unsigned char *dst, const unsigned char *src, size_t len,
			     uint8_t subst)
{
	unsigned char with;
	size_t i;

	memcpy(dst, src, len);
	if (subst == SF_SUBST_NONE)
		return;
	with = subst == SF_SUBST_NL_COMMA ? ',' : ' ';
	for (i = 0; i < len; i++) {
		unsigned char *nl = memchr(dst + i, '\n', len - i);

		if (!nl)
			break;
		*nl = with;
		i = (size_t)(nl - dst);
	}
}

/*
 * SF_SUBST_LIST_LINES: a segment starts at an element of a JSON list and
 * runs over elements and the ',' and whitespace between them. Served, each
 * ',' between elements is a line break and every other line break a space,
 * so each element (pretty-printed or not) becomes one line. What a byte
 * becomes depends on the text before it in the segment: list_scan is that
 * state; store->list_memo keeps it where recent reads stopped, so readers
 * going front to back (from any threads) seldom scan a byte twice.
 */
static struct list_memo *list_memo_slot(sf_store *store, uint32_t shard_id, uint64_t seg_start)
{
	uint64_t key = seg_start * UINT64_C(0x9E3779B97F4A7C15) ^ shard_id;

	return &store->list_memo[(key >> 32) % LIST_MEMO_SLOTS];
}

static void list_memo_note(sf_store *store, const sf_segment *seg, uint64_t pos,
			   const list_scan *state)
{
	struct list_memo *slot;

	pthread_mutex_lock(&store->list_lock);
	slot = list_memo_slot(store, seg->shard, seg->shard_offset);
	slot->used = 1;
	slot->shard = seg->shard;
	slot->seg_start = seg->shard_offset;
	slot->pos = pos;
	slot->state = *state;
	pthread_mutex_unlock(&store->list_lock);
}

/* Bytes that matter to list_lines: in a string, and outside one. */
static const unsigned char list_special_in[256] = { ['"'] = 1, ['\\'] = 1 };
static const unsigned char list_special_out[256] = {
	['"'] = 1, ['{'] = 1, ['['] = 1, ['}'] = 1, [']'] = 1, [','] = 1, ['\n'] = 1,
};

/* Serve len bytes of a list run into dst, or only follow them when dst is NULL. */
static void list_lines(list_scan *st, unsigned char *dst, const unsigned char *src, size_t len)
{
	size_t i = 0;

	if (dst)
		memcpy(dst, src, len);
	while (i < len) {
		unsigned char c;

		if (st->in_string) {
			if (st->escaped) {
				st->escaped = 0;
				i++;
				continue;
			}
			while (i < len && !list_special_in[src[i]])
				i++;
			if (i == len)
				break;
			if (src[i] == '\\')
				st->escaped = 1;
			else
				st->in_string = 0;
			i++;
			continue;
		}
		while (i < len && !list_special_out[src[i]])
			i++;
		if (i == len)
			break;
		c = src[i];
		if (c == '"')
			st->in_string = 1;
		else if (c == '{' || c == '[')
			st->depth++;
		else if (c == '}' || c == ']')
			st->depth -= st->depth > 0;
		else if (c == '\n' && dst)
			dst[i] = ' ';
		else if (c == ',' && st->depth == 0 && dst)
			dst[i] = '\n';
		i++;
	}
}

/* The segment holding file byte `offset` (the last one when offset is at
   or past the end), and in *start that segment's offset in the file. */
static uint32_t segment_at(const sf_node *file, uint64_t offset, uint64_t *start)
{
	uint32_t lo = 0, hi = file->segment_count;

	if (file->segment_count <= SEGMENT_LINEAR_MAX) {
		uint64_t at = 0;

		for (lo = 0; lo + 1 < file->segment_count; lo++) {
			if (offset - at < file->segments[lo].length)
				break;
			at += file->segments[lo].length;
		}
		*start = at;
		return lo;
	} else {
		const uint64_t *starts = (const uint64_t *)(file->segments + file->segment_count);

		while (hi - lo > 1) {
			uint32_t mid = lo + (hi - lo) / 2;

			if (starts[mid] <= offset)
				lo = mid;
			else
				hi = mid;
		}
		*start = starts[lo];
		return lo;
	}
}

/* The list_scan state at shard_pos inside seg: from the store's memo when
   it stands in the same segment at or before shard_pos, else from the
   segment's start, following the bytes between. */
static sf_err list_state_at(sf_store *store, const sf_segment *seg, uint64_t shard_pos,
			    sf_seek_reader *reader, int sequential, list_scan *st, sf_error *err)
{
	uint64_t pos = seg->shard_offset;

	memset(st, 0, sizeof(*st));
	if (shard_pos == pos)
		return SF_OK;
	pthread_mutex_lock(&store->list_lock);
	{
		const struct list_memo *slot = list_memo_slot(store, seg->shard, seg->shard_offset);

		if (slot->used && slot->shard == seg->shard && slot->seg_start == seg->shard_offset &&
		    slot->pos <= shard_pos && slot->pos >= pos) {
			*st = slot->state;
			pos = slot->pos;
		}
	}
	pthread_mutex_unlock(&store->list_lock);
	while (pos < shard_pos) {
		sf_seek_frame info;
		uint32_t frame = sf_seek_reader_frame_at(reader, pos);
		sf_cache_entry *entry;
		uint64_t end;

		sf_seek_reader_frame(reader, frame, &info);
		entry = get_frame(store, seg->shard, frame, reader, sequential, err);
		if (!entry)
			return err ? err->code : SF_ERR_CORRUPT;
		end = info.decompressed_offset + info.decompressed_size;
		if (end > shard_pos)
			end = shard_pos;
		list_lines(st, NULL, entry->data + (pos - info.decompressed_offset), (size_t)(end - pos));
		sf_cache_put(store->cache, entry);
		pos = end;
	}
	return SF_OK;
}

static sf_err read_range(sf_store *store, const sf_node *file, uint64_t offset,
			 size_t len, void *buf, size_t *got, int sequential, sf_error *err)
{
	unsigned char *out = buf;
	size_t done = 0;
	uint64_t seg_start;
	uint32_t seg_index, list_seg = UINT32_MAX;
	list_scan list;

	*got = 0;
	if (file->type != SF_NODE_FILE)
		return sf_error_set(err, SF_ERR_INVALID, "not a regular file");
	if (offset >= file->size || len == 0)
		return SF_OK;
	if (len > file->size - offset)
		len = (size_t)(file->size - offset);
	seg_index = segment_at(file, offset, &seg_start);
	while (done < len) {
		const sf_segment *seg = &file->segments[seg_index];
		uint64_t in_seg = offset + done - seg_start;
		uint64_t shard_pos = seg->shard_offset + in_seg;
		sf_seek_reader *reader = NULL;
		sf_seek_frame frame_info;
		sf_cache_entry *entry;
		uint32_t frame;
		size_t take;
		sf_err rc;

		if (in_seg >= seg->length) {
			seg_start += seg->length;
			seg_index++;
			continue;
		}
		rc = shard_reader(store, seg->shard, &reader, err);
		if (rc != SF_OK)
			goto fail;
		if (seg->subst == SF_SUBST_LIST_LINES && seg_index != list_seg) {
			rc = list_state_at(store, seg, shard_pos, reader, sequential, &list, err);
			if (rc != SF_OK)
				goto fail;
			list_seg = seg_index;
		}
		frame = sf_seek_reader_frame_at(reader, shard_pos);
		sf_seek_reader_frame(reader, frame, &frame_info);
		entry = get_frame(store, seg->shard, frame, reader, sequential, err);
		if (!entry) {
			rc = err ? err->code : SF_ERR_CORRUPT;
			goto fail;
		}
		take = (size_t)(frame_info.decompressed_offset + frame_info.decompressed_size - shard_pos);
		if (take > seg->length - in_seg)
			take = (size_t)(seg->length - in_seg);
		if (take > len - done)
			take = len - done;
		if (seg->subst == SF_SUBST_LIST_LINES) {
			list_lines(&list, out + done, entry->data + (shard_pos - frame_info.decompressed_offset),
				   take);
			if (shard_pos + take < seg->shard_offset + seg->length)
				list_memo_note(store, seg, shard_pos + take, &list);
		} else {
			copy_substituted(out + done, entry->data + (shard_pos - frame_info.decompressed_offset),
					 take, seg->subst);
		}
		if (sequential && shard_pos + take ==
					  frame_info.decompressed_offset + frame_info.decompressed_size)
			sf_cache_put_consumed(store->cache, entry);
		else
			sf_cache_put(store->cache, entry);
		done += take;
		continue;
fail:
		if (err) {
			char path[SF_MAX_PATH_BYTES];
			size_t used = strlen(err->message);

			sf_store_node_path(file, path, sizeof(path));
			snprintf(err->message + used, sizeof(err->message) - used,
				 " (reading '%s' at byte %" PRIu64 ")", path, offset + done);
		}
		return rc;
	}
	*got = done;
	return SF_OK;
}

sf_err sf_store_read(sf_store *store, const sf_node *file, uint64_t offset,
		     size_t len, void *buf, size_t *got, sf_error *err)
{
	return read_range(store, file, offset, len, buf, got, 0, err);
}

sf_err sf_store_read_sequential(sf_store *store, const sf_node *file, uint64_t offset,
				size_t len, void *buf, size_t *got, sf_error *err)
{
	return read_range(store, file, offset, len, buf, got, 1, err);
}

int sf_store_locate(const sf_node *file, uint64_t offset, uint32_t *shard_id,
		    uint64_t *shard_offset)
{
	const sf_segment *seg;
	uint64_t start;

	if (file->type != SF_NODE_FILE || offset >= file->size || file->segment_count == 0)
		return 0;
	seg = &file->segments[segment_at(file, offset, &start)];
	*shard_id = seg->shard;
	*shard_offset = seg->shard_offset + (offset - start);
	return 1;
}

/* The frame after the one holding shard_offset, for read-ahead. */
uint64_t sf_store_next_frame_offset(sf_store *store, uint32_t shard_id, uint64_t shard_offset)
{
	sf_seek_reader *reader = NULL;
	sf_seek_frame info;

	if (shard_id >= store->shard_count || shard_reader(store, shard_id, &reader, NULL) != SF_OK ||
	    shard_offset >= sf_seek_reader_content_size(reader))
		return UINT64_MAX;
	sf_seek_reader_frame(reader, sf_seek_reader_frame_at(reader, shard_offset), &info);
	return info.decompressed_offset + info.decompressed_size;
}

void sf_store_prefetch(sf_store *store, uint32_t shard_id, uint64_t shard_offset)
{
	sf_seek_reader *reader = NULL;
	sf_cache_entry *entry;
	uint32_t frame;

	if (shard_id >= store->shard_count || shard_offset >= store->shards[shard_id].content_bytes)
		return;
	if (shard_reader(store, shard_id, &reader, NULL) != SF_OK)
		return;
	frame = sf_seek_reader_frame_at(reader, shard_offset);
	if (!sf_cache_wanted(store->cache, shard_id, frame))
		return;
	entry = get_frame(store, shard_id, frame, reader, 0, NULL);
	sf_cache_put(store->cache, entry);
}

void sf_store_cache_stats(sf_store *store, sf_cache_stats *stats)
{
	sf_cache_stats_get(store->cache, stats);
}

void sf_store_index_stats(sf_store *store, sf_index_stats *stats)
{
	pthread_mutex_lock(&store->tree_lock);
	stats->loads = store->indexes_loaded;
	stats->failures = store->index_failures;
	stats->drops = store->drops;
	stats->resident = store->resident;
	stats->bytes = store->metadata_bytes;
	stats->budget_bytes = store->metadata_budget;
	stats->scanned = __atomic_load_n(&store->scanned, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&store->tree_lock);
}

/* ---- verify ------------------------------------------------------------ */

typedef struct verifier {
	sf_store *store;
	sf_verify_report_fn report;
	void *context;
	uint64_t problems;
	unsigned char *buf;
	size_t buf_size;
} verifier;

static void problem(verifier *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(verifier *v, const char *fmt, ...)
{
	char message[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	v->problems++;
	if (v->report)
		v->report(v->context, message);
}

static void verify_shard(verifier *v, uint32_t id)
{
	sf_seek_reader *reader = NULL;
	sf_error err = { 0 };
	uint32_t frame, count;
	unsigned char *dst;

	if (shard_reader(v->store, id, &reader, &err) != SF_OK) {
		problem(v, "%s", err.message);
		return;
	}
	count = sf_seek_reader_frame_count(reader);
	dst = malloc(SF_SEEK_MAX_FRAME_BYTES);
	if (!dst) {
		problem(v, "out of memory while verifying shard '%s'", v->store->shards[id].file);
		return;
	}
	for (frame = 0; frame < count; frame++) {
		sf_seek_frame info;

		sf_seek_reader_frame(reader, frame, &info);
		if (sf_seek_reader_read_frame(reader, frame, dst, SF_SEEK_MAX_FRAME_BYTES, &err) != SF_OK)
			problem(v, "%s", err.message);
	}
	free(dst);
}

static void verify_tree(verifier *v, const sf_node *dir)
{
	sf_error err = { 0 };
	uint32_t i;

	if (sf_store_load_dir(v->store, dir, &err) != SF_OK) {
		problem(v, "%s", err.message);
		return;
	}
	for (i = 0; i < dir->child_count; i++) {
		const sf_node *node = dir->children[i];
		char path[SF_MAX_PATH_BYTES];

		if (node->type == SF_NODE_DIR) {
			verify_tree(v, node);
			continue;
		}
		if (node->type != SF_NODE_FILE)
			continue;
		sf_store_node_path(node, path, sizeof(path));
		{
			sf_xxh64_state state;
			uint64_t offset = 0;
			int failed = 0;

			sf_xxh64_init(&state, 0);
			while (offset < node->size) {
				size_t got = 0;

				if (sf_store_read_sequential(v->store, node, offset, v->buf_size, v->buf, &got, &err) != SF_OK) {
					problem(v, "file '%s' is affected: %s", path, err.message);
					failed = 1;
					break;
				}
				sf_xxh64_update(&state, v->buf, got);
				offset += got;
			}
			if (!failed && node->has_xxh64 && sf_xxh64_digest(&state) != node->xxh64)
				problem(v, "file '%s': content fingerprint mismatch (expected xxh64 %016" PRIx64
					   ", got %016" PRIx64 ")",
					path, node->xxh64, sf_xxh64_digest(&state));
		}
	}
}

uint64_t sf_store_verify(sf_store *store, sf_verify_report_fn report, void *context)
{
	verifier v = { store, report, context, 0, NULL, 1u << 20 };
	uint32_t i;

	for (i = 0; i < store->shard_count; i++)
		verify_shard(&v, i);
	v.buf = malloc(v.buf_size);
	if (!v.buf) {
		problem(&v, "out of memory");
		return v.problems;
	}
	verify_tree(&v, &store->root);
	free(v.buf);
	return v.problems;
}
