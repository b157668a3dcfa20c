/*
 * cmd_upgrade.c - stepstore upgrade STORE [--dry-run]: rewrite a format
 * 1.0 store as format 2.0 (docs/FORMAT.md, "Upgrading").
 *
 * The new store.json and indexes are built in ".NAME.stepstore-tmp-PID"
 * beside STORE, the shards are hard-linked (copied where links are not
 * possible), everything is fsynced, and the new folder takes STORE's
 * place in one rename. STORE is never half-changed: until that rename it
 * is untouched, after it STORE is the complete new store. While it works
 * it holds store.json's flock exclusively, as `stepstore gc` does before
 * removing a store, so no reader has the old store open.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "sf_format.h"
#include "sf_index.h"
#include "sf_store.h"
#include "sf_util.h"
#include "sf_xxhash.h"

enum { UP_OK = 0, UP_DAMAGED = 1, UP_USAGE = 2, UP_INVALID = 3, UP_IO = 4 };

static int up_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int up_fail(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("stepstore: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

static int read_file(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long size;

	if (!f)
		return -1;
	if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
	    (uint64_t)size > SF_MAX_METADATA_BYTES || !(buf = malloc((size_t)size + 1)) ||
	    fread(buf, 1, (size_t)size, f) != (size_t)size) {
		int saved = errno ? errno : EIO;

		free(buf);
		fclose(f);
		errno = saved;
		return -1;
	}
	fclose(f);
	buf[size] = '\0';
	*out = buf;
	*len = (size_t)size;
	return 0;
}

static int write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	int rc;

	if (fd < 0)
		return -1;
	rc = sf_write_all(fd, data, len) == 0 && fsync(fd) == 0 ? 0 : -1;
	if (close(fd) != 0)
		rc = -1;
	return rc;
}

/* Hard link src to dst, or copy it (and fsync) where linking fails. */
static int link_or_copy(const char *src, const char *dst)
{
	char buf[1 << 16];
	int in, out, rc = 0;
	ssize_t n;

	if (link(src, dst) == 0)
		return 0;
	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -1;
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (out < 0) {
		close(in);
		return -1;
	}
	while ((n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || sf_write_all(out, buf, (size_t)n) != 0) {
			rc = -1;
			break;
		}
	}
	if (rc == 0 && fsync(out) != 0)
		rc = -1;
	close(in);
	close(out);
	return rc;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void remove_tree(const char *path)
{
	nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The new index file name for id. */
static void index_name(char *buf, size_t size, size_t id)
{
	snprintf(buf, size, "%s/%05zu%s", SF_STORE_INDEX_DIR, id, SF_INDEX_SUFFIX);
}

/*
 * Convert every index of doc (a 1.0 store.json) into tmp (NULL for a dry
 * run); replaces doc's "indexes". Adds the byte counts to *before and
 * *after. Returns an exit code.
 */
static int convert_indexes(const char *store, json_t *doc, const char *tmp, uint64_t *before,
			   uint64_t *after)
{
	json_t *list = json_object_get(doc, "indexes"), *fresh = json_array();
	size_t i;
	int code = UP_OK;

	if (!json_is_array(list) || !fresh) {
		json_decref(fresh);
		return up_fail(UP_DAMAGED, "'%s/%s': no \"indexes\" array", store, SF_STORE_ROOT_FILE);
	}
	for (i = 0; i < json_array_size(list) && code == UP_OK; i++) {
		json_t *item = json_array_get(list, i), *old = NULL;
		const char *file = json_string_value(json_object_get(item, "file"));
		const char *hash = json_string_value(json_object_get(item, "xxh64"));
		char *path = NULL, *text = NULL, *encoded = NULL, name[64], hex[17], *dst = NULL;
		void *packed = NULL;
		size_t len = 0, encoded_len = 0, packed_len = 0;
		uint64_t want;
		json_error_t jerr;
		sf_error err = { 0 };

		if (!file || strstr(file, "..") || file[0] == '/') {
			code = up_fail(UP_DAMAGED, "'%s/%s': index %zu: bad \"file\"", store, SF_STORE_ROOT_FILE, i);
			goto next;
		}
		path = sf_path_join(store, file);
		if (!path || read_file(path, &text, &len) != 0) {
			code = up_fail(UP_IO, "'%s': cannot read: %s", path ? path : file, strerror(errno));
			goto next;
		}
		if (hash && (!sf_parse_hex64(hash, &want) || sf_xxh64(text, len, 0) != want)) {
			code = up_fail(UP_DAMAGED, "'%s': checksum mismatch (index damaged); nothing changed", path);
			goto next;
		}
		old = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
		if (!old || !json_is_array(json_object_get(old, "entries"))) {
			code = up_fail(UP_DAMAGED, "'%s': byte %d: %s; nothing changed", path,
				       old ? 0 : jerr.position, old ? "expected an \"entries\" array" : jerr.text);
			goto next;
		}
		if (sf_index_encode(json_object_get(old, "entries"), 1, &encoded, &encoded_len, &err) != SF_OK ||
		    sf_index_compress(encoded, encoded_len, &packed, &packed_len, &err) != SF_OK) {
			code = up_fail(err.code == SF_ERR_NOMEM ? UP_IO : UP_DAMAGED, "'%s': %s", path, err.message);
			goto next;
		}
		index_name(name, sizeof(name), i);
		if (tmp) {
			dst = sf_path_join(tmp, name);
			if (!dst || write_file(dst, packed, packed_len) != 0) {
				code = up_fail(UP_IO, "'%s': cannot write: %s", dst ? dst : name, strerror(errno));
				goto next;
			}
		}
		*before += len;
		*after += packed_len;
		snprintf(hex, sizeof(hex), "%016" PRIx64, sf_xxh64(packed, packed_len, 0));
		json_array_append_new(fresh, json_pack("{s:s,s:s}", "file", name, "xxh64", hex));
next:
		json_decref(old);
		free(path);
		free(text);
		free(encoded);
		free(packed);
		free(dst);
	}
	if (code == UP_OK)
		json_object_set(doc, "indexes", fresh);
	json_decref(fresh);
	return code;
}

/* Hard-link every shard of doc into tmp/shards. */
static int link_shards(const char *store, json_t *doc, const char *tmp)
{
	json_t *list = json_object_get(doc, "shards");
	size_t i;

	for (i = 0; i < json_array_size(list); i++) {
		const char *file = json_string_value(json_object_get(json_array_get(list, i), "file"));
		char *src, *dst;
		int rc;

		if (!file || strstr(file, "..") || file[0] == '/' ||
		    strncmp(file, SF_STORE_SHARD_DIR "/", strlen(SF_STORE_SHARD_DIR) + 1) != 0)
			return up_fail(UP_DAMAGED, "'%s/%s': shard %zu: bad \"file\"", store, SF_STORE_ROOT_FILE, i);
		src = sf_path_join(store, file);
		dst = sf_path_join(tmp, file);
		rc = src && dst ? link_or_copy(src, dst) : -1;
		if (rc != 0)
			rc = up_fail(UP_IO, "'%s': cannot link or copy into the new store: %s", src ? src : file,
				     strerror(errno));
		free(src);
		free(dst);
		if (rc != 0)
			return rc;
	}
	return UP_OK;
}

/* Check that the new store opens and every index loads. */
static int check_tree(sf_store *store, const sf_node *dir, sf_error *err)
{
	uint32_t i;

	if (sf_store_load_dir(store, dir, err) != SF_OK)
		return -1;
	for (i = 0; i < dir->child_count; i++)
		if (dir->children[i]->type == SF_NODE_DIR && check_tree(store, dir->children[i], err) != 0)
			return -1;
	return 0;
}

/* Open the store at path and load every index: what stepfs would refuse
   is not converted, and the converted store must load. */
static int check_store(const char *path, const char *what)
{
	sf_store *store = NULL;
	sf_error err = { 0 };
	int rc;

	if (sf_store_open(&store, path, NULL, &err) != SF_OK)
		return up_fail(err.code == SF_ERR_VERSION ? UP_INVALID : err.code == SF_ERR_IO ? UP_IO : UP_DAMAGED,
			       "%s: %s; nothing changed", what, err.message);
	rc = check_tree(store, sf_store_root(store), &err);
	sf_store_free(store);
	if (rc != 0)
		return up_fail(UP_DAMAGED, "%s: %s; nothing changed", what, err.message);
	return UP_OK;
}

/* Put tmp in place of store: one atomic exchange where the file system
   offers it, else two renames (store is then briefly absent, never
   partial). The old folder is removed afterwards. */
static int swap_into_place(const char *store, const char *tmp)
{
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, store, RENAME_EXCHANGE) == 0) {
		remove_tree(tmp); /* now the old store */
		return UP_OK;
	}
	{
		size_t size = strlen(tmp) + 8;
		char *old = malloc(size);
		int rc = UP_OK;

		if (!old)
			return up_fail(UP_IO, "out of memory");
		snprintf(old, size, "%s-old", tmp);
		if (rename(store, old) != 0) {
			rc = up_fail(UP_IO, "'%s': cannot move aside: %s; nothing changed", store, strerror(errno));
		} else if (rename(tmp, store) != 0) {
			rc = up_fail(UP_IO, "'%s': cannot move the new store in place: %s; the old store is back",
				     store, strerror(errno));
			if (rename(old, store) != 0)
				rc = up_fail(UP_IO, "'%s': the old store is at '%s'", store, old);
		} else {
			remove_tree(old);
		}
		free(old);
		return rc;
	}
}

int stepstore_cmd_upgrade(int argc, char **argv)
{
	const char *store = NULL;
	int dry_run = 0, code = UP_OK, lock_fd = -1, i;
	char *root_path = NULL, *text = NULL, *tmp = NULL, *parent = NULL, *out = NULL;
	size_t len = 0;
	json_t *doc = NULL, *version;
	json_error_t jerr;
	uint64_t before = 0, after = 0;
	json_int_t major, minor;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--dry-run") == 0)
			dry_run = 1;
		else if (argv[i][0] == '-' || store)
			return up_fail(UP_USAGE, "usage: stepstore upgrade STORE [--dry-run]");
		else
			store = argv[i];
	}
	if (!store)
		return up_fail(UP_USAGE, "usage: stepstore upgrade STORE [--dry-run]");
	root_path = sf_path_join(store, SF_STORE_ROOT_FILE);
	if (!root_path) {
		code = up_fail(UP_IO, "out of memory");
		goto out;
	}
	/* exclusive, as `stepstore gc` before it removes a store: no reader
	   has the old store open while it is replaced */
	lock_fd = open(root_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (lock_fd < 0) {
		code = up_fail(errno == ENOENT ? UP_IO : UP_IO, "'%s': not a store (%s: %s)", store,
			       SF_STORE_ROOT_FILE, strerror(errno));
		goto out;
	}
	if (!dry_run && flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
		code = up_fail(UP_IO, "'%s': in use (a mount or another command holds %s open); nothing changed",
			       store, SF_STORE_ROOT_FILE);
		goto out;
	}
	if (read_file(root_path, &text, &len) != 0) {
		code = up_fail(UP_IO, "'%s': cannot read: %s", root_path, strerror(errno));
		goto out;
	}
	doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	version = json_object_get(doc, "format_version");
	if (!doc || !json_is_array(version) || !json_is_integer(json_array_get(version, 0)) ||
	    !json_is_integer(json_array_get(version, 1)) ||
	    !json_is_string(json_object_get(doc, "format")) ||
	    strcmp(json_string_value(json_object_get(doc, "format")), SF_FORMAT_NAME) != 0) {
		code = up_fail(UP_INVALID, "'%s': not a stepfs store", root_path);
		goto out;
	}
	major = json_integer_value(json_array_get(version, 0));
	minor = json_integer_value(json_array_get(version, 1));
	if (major == SF_FORMAT_MAJOR) {
		printf("'%s': already format %" JSON_INTEGER_FORMAT ".%" JSON_INTEGER_FORMAT "; nothing to do\n",
		       store, major, minor);
		goto out;
	}
	if (major != 1) {
		code = up_fail(UP_INVALID, "'%s': store format version %" JSON_INTEGER_FORMAT ".%" JSON_INTEGER_FORMAT
			       " cannot be upgraded; this stepstore upgrades 1.x to %d.%d", store, major, minor,
			       SF_FORMAT_MAJOR, SF_FORMAT_MINOR_BASE);
		goto out;
	}
	/* the 1.0 reader's checks first; opening takes a shared lock, so the
	   exclusive one is let go meanwhile and taken again after */
	if (!dry_run)
		flock(lock_fd, LOCK_UN);
	code = check_store(store, "the store does not load");
	if (code == UP_OK && !dry_run && flock(lock_fd, LOCK_EX | LOCK_NB) != 0)
		code = up_fail(UP_IO, "'%s': in use (a mount or another command holds %s open); nothing changed",
			       store, SF_STORE_ROOT_FILE);
	if (code != UP_OK)
		goto out;
	if (dry_run) {
		code = convert_indexes(store, doc, NULL, &before, &after);
		if (code == UP_OK)
			printf("'%s': would upgrade format %" JSON_INTEGER_FORMAT ".%" JSON_INTEGER_FORMAT
			       " to %d.%d; indexes %" PRIu64 " -> %" PRIu64 " bytes\n",
			       store, major, minor, SF_FORMAT_MAJOR, SF_FORMAT_MINOR_BASE, before, after);
		goto out;
	}
	{
		const char *slash;
		char *trimmed = sf_strdup(store);
		size_t n;

		if (!trimmed) {
			code = up_fail(UP_IO, "out of memory");
			goto out;
		}
		for (n = strlen(trimmed); n > 1 && trimmed[n - 1] == '/'; n--)
			trimmed[n - 1] = '\0';
		slash = strrchr(trimmed, '/');
		parent = slash ? sf_strndup(trimmed, (size_t)(slash - trimmed) + (slash == trimmed)) : sf_strdup(".");
		n = strlen(trimmed) + 64;
		tmp = malloc(n);
		if (tmp && parent)
			snprintf(tmp, n, "%s%s.%s.stepstore-tmp-%ld", slash ? parent : "", slash ? "/" : "",
				 slash ? slash + 1 : trimmed, (long)getpid());
		free(trimmed);
		if (!tmp || !parent) {
			code = up_fail(UP_IO, "out of memory");
			goto out;
		}
	}
	{
		char *shards = sf_path_join(tmp, SF_STORE_SHARD_DIR), *indexes = sf_path_join(tmp, SF_STORE_INDEX_DIR);

		if (!shards || !indexes || mkdir(tmp, 0755) != 0 || mkdir(shards, 0755) != 0 ||
		    mkdir(indexes, 0755) != 0)
			code = up_fail(UP_IO, "'%s': cannot create: %s", tmp, strerror(errno));
		free(shards);
		free(indexes);
		if (code != UP_OK)
			goto out;
	}
	code = convert_indexes(store, doc, tmp, &before, &after);
	if (code == UP_OK)
		code = link_shards(store, doc, tmp);
	if (code != UP_OK)
		goto out;
	json_array_set_new(version, 0, json_integer(SF_FORMAT_MAJOR));
	json_array_set_new(version, 1, json_integer(SF_FORMAT_MINOR_BASE));
	json_object_set_new(doc, "upgraded", json_pack("{s:[II],s:s}", "from", major, minor,
							 "by", "stepstore " SF_VERSION));
	out = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	{
		char *new_root = sf_path_join(tmp, SF_STORE_ROOT_FILE), *shards = sf_path_join(tmp, SF_STORE_SHARD_DIR),
		     *indexes = sf_path_join(tmp, SF_STORE_INDEX_DIR);
		size_t out_len = out ? strlen(out) : 0;

		if (out && new_root) {
			out = realloc(out, out_len + 2);
			if (out) {
				out[out_len] = '\n';
				out[out_len + 1] = '\0';
			}
		}
		if (!out || !new_root || !shards || !indexes || write_file(new_root, out, out_len + 1) != 0 ||
		    sf_fsync_dir(shards) != 0 || sf_fsync_dir(indexes) != 0 || sf_fsync_dir(tmp) != 0)
			code = up_fail(UP_IO, "'%s': cannot write the new store: %s; nothing changed", tmp,
				       strerror(errno));
		free(new_root);
		free(shards);
		free(indexes);
		if (code != UP_OK)
			goto out;
	}
	code = check_store(tmp, "the upgraded store does not load");
	if (code == UP_OK)
		code = swap_into_place(store, tmp);
	if (code == UP_OK) {
		if (sf_fsync_dir(parent) != 0)
			code = up_fail(UP_IO, "'%s': fsync failed: %s", parent, strerror(errno));
		else
			printf("'%s': upgraded format %" JSON_INTEGER_FORMAT ".%" JSON_INTEGER_FORMAT
			       " to %d.%d; indexes %" PRIu64 " -> %" PRIu64 " bytes\n",
			       store, major, minor, SF_FORMAT_MAJOR, SF_FORMAT_MINOR_BASE, before, after);
	}
out:
	if (code != UP_OK && tmp)
		remove_tree(tmp);
	if (lock_fd >= 0)
		close(lock_fd);
	json_decref(doc);
	free(out);
	free(tmp);
	free(parent);
	free(text);
	free(root_path);
	return code;
}
