/*
 * commands.h - stepstore commands that live outside stepstore.c.
 *
 * Each takes the arguments after the command name (argv[0] is the first
 * argument, not the command) and returns the process exit code listed in
 * stepstore's usage(): 0 success, 2 usage error, 3 invalid input, 4 I/O
 * error or missing file.
 */
#ifndef STEPSTORE_COMMANDS_H
#define STEPSTORE_COMMANDS_H

#include "sf_config.h"

/* stepstore gc ROOT [--max-age DURATION] [--max-size SIZE] [--dry-run]
   [--config FILE] */
int stepstore_cmd_gc(int argc, char **argv);

/* stepstore stats MNT [--json]: the counters of a stepfs mount, read from
   MNT/.stepfs/stats.json (MNT may be any path inside the mount). */
int stepstore_cmd_stats(int argc, char **argv);

/* stepstore config [--config FILE]: the effective configuration and where
   each value came from. */
int stepstore_cmd_config(int argc, char **argv);

/* stepstore upgrade STORE [--dry-run]: rewrite a format 1.0 store as 2.0,
   atomically (a 2.0 store is left as it is). Also exit code 1: the store
   is damaged and was left unchanged. */
int stepstore_cmd_upgrade(int argc, char **argv);

/*
 * For commands that take --config FILE among their options (pack): load
 * the configuration into config (initialised here; the caller calls
 * sf_config_release()) from the FILE of the last "--config FILE" pair in
 * argv, or from the usual places. The caller's own option loop must skip
 * "--config FILE". On failure prints "stepstore: ..." on stderr and
 * returns the exit code (config is then released already); 0 on success.
 */
int stepstore_load_config(int argc, char **argv, sf_config *config);

#endif
