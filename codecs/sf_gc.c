#include "sf_gc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sf_config.h"
#include "sf_format.h"
#include "sf_util.h"

/* store.json is at most 64 MiB (docs/FORMAT.md, Limits). */
#define STORE_JSON_MAX_BYTES (64ull * 1024ull * 1024ull)

typedef struct gc_unit {
	char *name;
	char *path;
	sf_gc_kind kind;
	dev_t dev;
	ino_t ino;
	int64_t last_use;
	uint64_t bytes;
	int unreadable;             /* the walk stopped early: keep */
	sf_gc_action action;
	char reason[SF_ERROR_MSG_MAX];
} gc_unit;

typedef struct mount_entry {
	char *source;
	char *target;
	char *fstype;
} mount_entry;

typedef struct gc_run {
	const sf_gc_options *options;
	int root_fd;
	dev_t root_dev;
	char *root_real;            /* canonical path of root, for mount matching */
	mount_entry *mounts;
	size_t mount_count;
	gc_unit *units;
	size_t unit_count, unit_capacity;
	int64_t now;
} gc_run;

void sf_gc_options_init(sf_gc_options *options)
{
	memset(options, 0, sizeof(*options));
}

const char *sf_gc_kind_name(sf_gc_kind kind)
{
	switch (kind) {
	case SF_GC_STORE: return "store";
	case SF_GC_CACHE: return "cache";
	case SF_GC_LEFTOVER: return "leftover";
	default: return "unknown";
	}
}

/* ---- mounts -------------------------------------------------------------- */

/* Undo the octal escapes (\040 for a space ...) of a mounts-file field. */
static void unescape_field(char *field)
{
	char *in = field, *out = field;

	while (*in) {
		if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' && in[2] >= '0' && in[2] <= '7' &&
		    in[3] >= '0' && in[3] <= '7') {
			*out++ = (char)((in[1] - '0') * 64 + (in[2] - '0') * 8 + (in[3] - '0'));
			in += 4;
		} else {
			*out++ = *in++;
		}
	}
	*out = '\0';
}

static void free_mounts(gc_run *run)
{
	size_t i;

	for (i = 0; i < run->mount_count; i++) {
		free(run->mounts[i].source);
		free(run->mounts[i].target);
		free(run->mounts[i].fstype);
	}
	free(run->mounts);
	run->mounts = NULL;
	run->mount_count = 0;
}

/* A missing mounts file means no mounts are known; the lock and the
   device check while walking still protect what is in use. */
static sf_err load_mounts(gc_run *run, const char *path, sf_error *err)
{
	FILE *file = fopen(path, "re");
	char *line = NULL;
	size_t line_size = 0, capacity = 0;
	sf_err rc = SF_OK;

	if (!file)
		return SF_OK;
	while (getline(&line, &line_size, file) > 0) {
		char *save = NULL, *source, *target, *fstype;
		mount_entry *entry;

		source = strtok_r(line, " \t\n", &save);
		target = source ? strtok_r(NULL, " \t\n", &save) : NULL;
		fstype = target ? strtok_r(NULL, " \t\n", &save) : NULL;
		if (!fstype)
			continue;
		if (run->mount_count == capacity) {
			size_t grown_capacity = capacity ? capacity * 2 : 64;
			mount_entry *grown = realloc(run->mounts, grown_capacity * sizeof(*grown));

			if (!grown) {
				rc = sf_error_set(err, SF_ERR_NOMEM, "'%s': out of memory", path);
				goto out;
			}
			run->mounts = grown;
			capacity = grown_capacity;
		}
		unescape_field(source);
		unescape_field(target);
		entry = &run->mounts[run->mount_count];
		entry->source = sf_strdup(source);
		entry->target = sf_strdup(target);
		entry->fstype = sf_strdup(fstype);
		run->mount_count++;
		if (!entry->source || !entry->target || !entry->fstype) {
			rc = sf_error_set(err, SF_ERR_NOMEM, "'%s': out of memory", path);
			goto out;
		}
	}
out:
	free(line);
	fclose(file);
	return rc;
}

/* path is inside (or is) dir, both canonical. */
static int path_within(const char *path, const char *dir)
{
	size_t len = strlen(dir);

	if (strncmp(path, dir, len) != 0)
		return 0;
	return path[len] == '\0' || path[len] == '/' || (len == 1 && dir[0] == '/');
}

/* 1 (and a reason) when unit_path is a FUSE mount's source, holds one, or
   holds a mount point. */
static int unit_mounted(const gc_run *run, const char *unit_path, char *reason, size_t size)
{
	size_t i;

	for (i = 0; i < run->mount_count; i++) {
		const mount_entry *m = &run->mounts[i];

		if (path_within(m->target, unit_path)) {
			snprintf(reason, size, "holds the mount point '%s'", m->target);
			return 1;
		}
		if (strncmp(m->fstype, "fuse", 4) == 0) {
			char resolved[PATH_MAX];
			const char *source = m->source;

			if (realpath(m->source, resolved))
				source = resolved;
			if (path_within(source, unit_path)) {
				snprintf(reason, size, "mounted on '%s'", m->target);
				return 1;
			}
		}
	}
	return 0;
}

/* ---- walking a unit ------------------------------------------------------ */

typedef struct walk_state {
	dev_t dev;
	uint64_t entries, max_entries;
	uint64_t bytes;
	int64_t newest_file_mtime;
	int has_file;
	int mount_inside;
	int error;                  /* errno; E2BIG: too many entries; ELOOP: too deep */
} walk_state;

/* Takes ownership of dir_fd. */
static void walk(int dir_fd, int depth, walk_state *state)
{
	DIR *dir = fdopendir(dir_fd);
	struct dirent *entry;

	if (!dir) {
		state->error = errno;
		close(dir_fd);
		return;
	}
	while (!state->error && (entry = readdir(dir)) != NULL) {
		struct stat st;

		if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
			continue;
		if (++state->entries > state->max_entries) {
			state->error = E2BIG;
			break;
		}
		if (fstatat(dirfd(dir), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			if (errno != ENOENT)
				state->error = errno;
			continue;
		}
		if (st.st_dev != state->dev) {
			state->mount_inside = 1;
			continue;
		}
		state->bytes += (uint64_t)st.st_blocks * 512u;
		if (S_ISDIR(st.st_mode)) {
			int child;

			if (depth + 1 >= SF_GC_MAX_DEPTH) {
				state->error = ELOOP;
				break;
			}
			child = openat(dirfd(dir), entry->d_name,
				       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (child < 0) {
				if (errno != ENOENT)
					state->error = errno;
				continue;
			}
			walk(child, depth + 1, state);
		} else if (!state->has_file || st.st_mtim.tv_sec > state->newest_file_mtime) {
			state->has_file = 1;
			state->newest_file_mtime = st.st_mtim.tv_sec;
		}
	}
	closedir(dir);
}

static int is_store_json(int dir_fd, struct stat *st)
{
	json_t *document, *format;
	json_error_t jerr;
	int fd, is_store = 0;

	/* O_NOATIME: gc reading store.json must not make the store look used.
	   Only the owner (or root) may ask for it. */
	fd = openat(dir_fd, SF_STORE_ROOT_FILE,
		    O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOATIME);
	if (fd < 0 && errno == EPERM)
		fd = openat(dir_fd, SF_STORE_ROOT_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return 0;
	if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode) || (uint64_t)st->st_size > STORE_JSON_MAX_BYTES)
		goto out;
	document = json_loadfd(fd, 0, &jerr);
	if (!document)
		goto out;
	format = json_object_get(document, "format");
	is_store = json_is_string(format) && strcmp(json_string_value(format), SF_FORMAT_NAME) == 0;
	json_decref(document);
out:
	close(fd);
	return is_store;
}

static int has_entry(int dir_fd, const char *name, int want_dir)
{
	struct stat st;

	if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return 0;
	return want_dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode);
}

static int64_t newest(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

/* ".NAME.stepstore-gc-PID" of a process that is gone. */
static int is_leftover(const char *name)
{
	const char *infix, *p;
	long pid;

	if (name[0] != '.')
		return 0;
	infix = strstr(name, SF_GC_TMP_INFIX);
	if (!infix || infix == name)
		return 0;
	/* the last occurrence: NAME may itself contain the infix */
	while ((p = strstr(infix + 1, SF_GC_TMP_INFIX)) != NULL)
		infix = p;
	p = infix + strlen(SF_GC_TMP_INFIX);
	if (*p < '1' || *p > '9')
		return 0;
	pid = 0;
	for (; *p; p++) {
		if (*p < '0' || *p > '9' || pid > 100000000)
			return 0;
		pid = pid * 10 + (*p - '0');
	}
	if (pid == (long)getpid())
		return 0;
	return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

static sf_err add_unit(gc_run *run, const char *root, const char *name, sf_gc_kind kind,
		       gc_unit **out, sf_error *err)
{
	gc_unit *unit;

	if (run->unit_count == run->unit_capacity) {
		size_t capacity = run->unit_capacity ? run->unit_capacity * 2 : 32;
		gc_unit *grown = realloc(run->units, capacity * sizeof(*grown));

		if (!grown)
			return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		run->units = grown;
		run->unit_capacity = capacity;
	}
	unit = &run->units[run->unit_count];
	memset(unit, 0, sizeof(*unit));
	unit->name = sf_strdup(name);
	unit->path = sf_path_join(root, name);
	if (!unit->name || !unit->path) {
		free(unit->name);
		free(unit->path);
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	}
	unit->kind = kind;
	run->unit_count++;
	*out = unit;
	return SF_OK;
}

/* Classify the child `name` of root and measure it; ignored children add nothing. */
static sf_err inspect_child(gc_run *run, const char *root, const char *name, sf_error *err)
{
	struct stat st, store_st;
	walk_state state;
	sf_gc_kind kind;
	gc_unit *unit = NULL;
	char *real_path = NULL;
	int fd;
	sf_err rc = SF_OK;

	if (fstatat(run->root_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode))
		return SF_OK; /* gone, a file, or a symbolic link: not ours */
	if (name[0] == '.' && !is_leftover(name))
		return SF_OK;
	fd = openat(run->root_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return SF_OK;
	if (name[0] == '.')
		kind = SF_GC_LEFTOVER;
	else if (is_store_json(fd, &store_st))
		kind = SF_GC_STORE;
	else if (has_entry(fd, "pipelines", 1) || has_entry(fd, "steps_data", 1) ||
		 has_entry(fd, "batch_manager.json", 0))
		kind = SF_GC_CACHE;
	else
		goto out_close;
	rc = add_unit(run, root, name, kind, &unit, err);
	if (rc != SF_OK)
		goto out_close;
	if (fstat(fd, &st) != 0) {
		unit->unreadable = 1;
		snprintf(unit->reason, sizeof(unit->reason), "cannot stat: %s", strerror(errno));
		goto out_close;
	}
	unit->dev = st.st_dev;
	unit->ino = st.st_ino;
	memset(&state, 0, sizeof(state));
	state.dev = st.st_dev;
	state.max_entries = run->options->max_entries ? run->options->max_entries
						      : SF_GC_DEFAULT_MAX_ENTRIES;
	state.bytes = (uint64_t)st.st_blocks * 512u;
	walk(fd, 0, &state); /* takes fd */
	fd = -1;
	unit->bytes = state.bytes;
	if (kind == SF_GC_STORE)
		unit->last_use = newest(newest(store_st.st_atim.tv_sec, store_st.st_mtim.tv_sec),
					st.st_mtim.tv_sec);
	else
		unit->last_use = state.has_file ? state.newest_file_mtime : st.st_mtim.tv_sec;
	if (state.error == E2BIG) {
		unit->unreadable = 1;
		snprintf(unit->reason, sizeof(unit->reason), "more than %llu entries, not inspected",
			 (unsigned long long)state.max_entries);
	} else if (state.error == ELOOP) {
		unit->unreadable = 1;
		snprintf(unit->reason, sizeof(unit->reason), "folders nested deeper than %d, not inspected",
			 SF_GC_MAX_DEPTH);
	} else if (state.error) {
		unit->unreadable = 1;
		snprintf(unit->reason, sizeof(unit->reason), "cannot inspect: %s", strerror(state.error));
	}
	if (state.mount_inside) {
		unit->action = SF_GC_MOUNTED;
		snprintf(unit->reason, sizeof(unit->reason), "holds a mount point");
	}
	real_path = run->root_real ? sf_path_join(run->root_real, name) : NULL;
	if (real_path && unit->action != SF_GC_MOUNTED &&
	    unit_mounted(run, real_path, unit->reason, sizeof(unit->reason)))
		unit->action = SF_GC_MOUNTED;
	free(real_path);
out_close:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* ---- removing ------------------------------------------------------------ */

/* Delete name below parent_fd: no symbolic link is followed and no other
   file system entered. Returns 0 or an errno value. */
static int remove_tree(int parent_fd, const char *name, dev_t dev, int depth)
{
	struct stat st;
	DIR *dir;
	int fd, rc = 0, pass;

	if (depth >= SF_GC_MAX_DEPTH)
		return ELOOP;
	fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOTDIR || errno == ELOOP) {
			if (unlinkat(parent_fd, name, 0) != 0 && errno != ENOENT)
				return errno;
			return 0;
		}
		return errno == ENOENT ? 0 : errno;
	}
	if (fstat(fd, &st) != 0) {
		rc = errno;
		close(fd);
		return rc;
	}
	if (st.st_dev != dev) {
		close(fd);
		return EXDEV;
	}
	dir = fdopendir(fd);
	if (!dir) {
		rc = errno;
		close(fd);
		return rc;
	}
	/* Removing entries while reading may hide some from readdir(); a
	   second pass picks them up. */
	for (pass = 0; pass < 3; pass++) {
		struct dirent *entry;

		rewinddir(dir);
		while (!rc && (entry = readdir(dir)) != NULL) {
			if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
				continue;
			if (entry->d_type == DT_DIR || entry->d_type == DT_UNKNOWN)
				rc = remove_tree(fd, entry->d_name, dev, depth + 1);
			else if (unlinkat(fd, entry->d_name, 0) != 0 && errno != ENOENT)
				rc = errno;
		}
		if (rc)
			break;
		if (unlinkat(parent_fd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
			break;
		if (errno != ENOTEMPTY && errno != EEXIST) {
			rc = errno;
			break;
		}
		if (pass == 2)
			rc = ENOTEMPTY;
	}
	closedir(dir);
	return rc;
}

/* Rename the unit out of the way, then delete it. 0 on success. */
static int remove_unit(gc_run *run, gc_unit *unit)
{
	char hidden[NAME_MAX + 32];
	struct stat st;
	int name_room, rc;

	if (unit->kind == SF_GC_LEFTOVER) {
		snprintf(hidden, sizeof(hidden), "%s", unit->name);
	} else {
		name_room = (int)(NAME_MAX - 1 - strlen(SF_GC_TMP_INFIX) - 20);
		snprintf(hidden, sizeof(hidden), ".%.*s%s%ld", name_room, unit->name, SF_GC_TMP_INFIX,
			 (long)getpid());
		if (renameat2(run->root_fd, unit->name, run->root_fd, hidden, RENAME_NOREPLACE) != 0) {
			snprintf(unit->reason, sizeof(unit->reason), "cannot rename to '%s': %s", hidden,
				 strerror(errno));
			return -1;
		}
		if (fstatat(run->root_fd, hidden, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    st.st_dev != unit->dev || st.st_ino != unit->ino) {
			/* replaced between inspection and removal: put it back */
			renameat2(run->root_fd, hidden, run->root_fd, unit->name, RENAME_NOREPLACE);
			snprintf(unit->reason, sizeof(unit->reason), "changed while gc ran; kept");
			return -1;
		}
	}
	rc = remove_tree(run->root_fd, hidden, unit->dev, 0);
	if (rc != 0) {
		snprintf(unit->reason, sizeof(unit->reason),
			 "renamed to '%s' but not completely removed: %s (the next gc retries)", hidden,
			 strerror(rc));
		return -1;
	}
	return 0;
}

/* Take the store's lock the way a remover must; returns the fd holding
   it, -1 with unit->action set when the store is in use. */
static int lock_store(gc_run *run, gc_unit *unit)
{
	struct stat st;
	int dir_fd, fd;

	dir_fd = openat(run->root_fd, unit->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dir_fd < 0 || fstat(dir_fd, &st) != 0 || st.st_ino != unit->ino || st.st_dev != unit->dev) {
		if (dir_fd >= 0)
			close(dir_fd);
		unit->action = SF_GC_FAILED;
		snprintf(unit->reason, sizeof(unit->reason), "changed while gc ran; kept");
		return -1;
	}
	fd = openat(dir_fd, SF_STORE_ROOT_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	close(dir_fd);
	if (fd < 0) {
		unit->action = SF_GC_FAILED;
		snprintf(unit->reason, sizeof(unit->reason), "cannot open %s: %s", SF_STORE_ROOT_FILE,
			 strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int saved = errno;

		close(fd);
		if (saved == EWOULDBLOCK) {
			unit->action = SF_GC_IN_USE;
			snprintf(unit->reason, sizeof(unit->reason),
				 "in use: another process holds %s open", SF_STORE_ROOT_FILE);
		} else {
			unit->action = SF_GC_FAILED;
			snprintf(unit->reason, sizeof(unit->reason), "cannot lock %s: %s",
				 SF_STORE_ROOT_FILE, strerror(saved));
		}
		return -1;
	}
	return fd;
}

/* ---- the run ------------------------------------------------------------- */

static int by_last_use(const void *a, const void *b)
{
	const gc_unit *x = a, *y = b;

	if (x->kind == SF_GC_LEFTOVER || y->kind == SF_GC_LEFTOVER) {
		if (x->kind != y->kind)
			return x->kind == SF_GC_LEFTOVER ? -1 : 1;
	} else if (x->last_use != y->last_use) {
		return x->last_use < y->last_use ? -1 : 1;
	}
	return strcmp(x->name, y->name);
}

static void report_unit(const gc_unit *unit, sf_gc_report_fn report, void *context)
{
	sf_gc_unit shown;

	if (!report)
		return;
	shown.name = unit->name;
	shown.path = unit->path;
	shown.kind = unit->kind;
	shown.last_use = unit->last_use;
	shown.bytes = unit->bytes;
	shown.action = unit->action;
	shown.reason = unit->reason;
	report(context, &shown);
}

/* Decide one unit (units[] is sorted) and carry the decision out. */
static void decide(gc_run *run, gc_unit *unit, uint64_t *total, sf_gc_summary *summary)
{
	const sf_gc_options *options = run->options;
	char limit[32];
	int by_age, by_size, lock_fd = -1;

	if (unit->kind == SF_GC_LEFTOVER) {
		by_age = 1;
		by_size = 0;
		snprintf(unit->reason, sizeof(unit->reason), "left by an interrupted gc");
	} else {
		by_age = options->max_age_seconds && run->now > unit->last_use &&
			 (uint64_t)(run->now - unit->last_use) > options->max_age_seconds;
		by_size = options->max_bytes && *total > options->max_bytes;
	}
	if (unit->unreadable || (!by_age && !by_size)) {
		/* a mount found while walking is only news when removal was wanted */
		if (!unit->unreadable) {
			unit->action = SF_GC_KEEP;
			unit->reason[0] = '\0';
		} else {
			unit->action = SF_GC_UNREADABLE;
		}
		summary->kept++;
		return;
	}
	if (unit->action == SF_GC_MOUNTED) {
		summary->kept++;
		return;
	}
	if (unit->kind == SF_GC_STORE) {
		lock_fd = lock_store(run, unit);
		if (lock_fd < 0) {
			if (unit->action == SF_GC_FAILED)
				summary->failed++;
			else
				summary->kept++;
			return;
		}
	}
	if (unit->kind != SF_GC_LEFTOVER) {
		if (by_age)
			snprintf(unit->reason, sizeof(unit->reason), "unused for longer than %s",
				 sf_format_duration(options->max_age_seconds, limit, sizeof(limit)));
		else
			snprintf(unit->reason, sizeof(unit->reason), "over the %s limit",
				 sf_format_size(options->max_bytes, limit, sizeof(limit)));
	}
	if (options->dry_run || remove_unit(run, unit) == 0) {
		unit->action = SF_GC_REMOVE;
		summary->removed++;
		summary->bytes_freed += unit->bytes;
		if (unit->kind != SF_GC_LEFTOVER)
			*total -= unit->bytes;
	} else {
		unit->action = SF_GC_FAILED;
		summary->failed++;
	}
	if (lock_fd >= 0)
		close(lock_fd);
}

sf_err sf_gc_run(const char *root, const sf_gc_options *options, sf_gc_report_fn report,
		 void *context, sf_gc_summary *summary, sf_error *err)
{
	sf_gc_options defaults;
	sf_gc_summary local_summary;
	gc_run run;
	struct stat st;
	DIR *dir = NULL;
	struct dirent *entry;
	uint64_t total = 0;
	size_t i;
	int dup_fd;
	sf_err rc = SF_OK;

	if (!options) {
		sf_gc_options_init(&defaults);
		options = &defaults;
	}
	if (!summary)
		summary = &local_summary;
	memset(summary, 0, sizeof(*summary));
	memset(&run, 0, sizeof(run));
	run.options = options;
	run.now = options->now ? options->now : (int64_t)time(NULL);
	run.root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (run.root_fd < 0) {
		int saved = errno;

		if (saved == ENOENT)
			return sf_error_set(err, SF_ERR_NOTFOUND, "'%s': no such folder", root);
		if (saved == ENOTDIR)
			return sf_error_set(err, SF_ERR_INVALID, "'%s': not a folder, expected a folder of stores and caches", root);
		return sf_error_io(err, saved, "'%s': cannot open", root);
	}
	if (fstat(run.root_fd, &st) != 0) {
		rc = sf_error_io(err, errno, "'%s': cannot stat", root);
		goto out;
	}
	run.root_dev = st.st_dev;
	run.root_real = realpath(root, NULL);
	rc = load_mounts(&run, options->mounts_file ? options->mounts_file : "/proc/self/mounts", err);
	if (rc != SF_OK)
		goto out;
	dup_fd = dup(run.root_fd);
	if (dup_fd < 0 || !(dir = fdopendir(dup_fd))) {
		rc = sf_error_io(err, errno, "'%s': cannot read", root);
		if (dup_fd >= 0)
			close(dup_fd);
		goto out;
	}
	errno = 0;
	while ((entry = readdir(dir)) != NULL) {
		if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
			continue;
		rc = inspect_child(&run, root, entry->d_name, err);
		if (rc != SF_OK)
			goto out;
		errno = 0;
	}
	if (errno) {
		rc = sf_error_io(err, errno, "'%s': cannot read", root);
		goto out;
	}
	if (run.unit_count > 1)
		qsort(run.units, run.unit_count, sizeof(*run.units), by_last_use);
	for (i = 0; i < run.unit_count; i++) {
		if (run.units[i].kind == SF_GC_LEFTOVER)
			continue;
		summary->units++;
		total += run.units[i].bytes;
	}
	summary->bytes_before = total;
	for (i = 0; i < run.unit_count; i++) {
		decide(&run, &run.units[i], &total, summary);
		report_unit(&run.units[i], report, context);
		if (run.units[i].action == SF_GC_FAILED && rc == SF_OK)
			rc = sf_error_set(err, SF_ERR_IO, "'%s': %s", run.units[i].path, run.units[i].reason);
	}
out:
	if (dir)
		closedir(dir);
	for (i = 0; i < run.unit_count; i++) {
		free(run.units[i].name);
		free(run.units[i].path);
	}
	free(run.units);
	free_mounts(&run);
	free(run.root_real);
	close(run.root_fd);
	return rc;
}
