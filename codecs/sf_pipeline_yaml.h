/*
 * sf_pipeline_yaml.h - the step order of a distilabel pipeline.yaml.
 *
 * distilabel writes pipeline.yaml with the steps in pipeline order under
 * pipeline.steps[].name; stepfs numbers step_N in that order. Only that
 * list is read (with libyaml's event parser; no document is built).
 */
#ifndef SF_PIPELINE_YAML_H
#define SF_PIPELINE_YAML_H

#include <stddef.h>

#include "sf_error.h"

/*
 * Read the step names from the YAML file at path. On success *names is a
 * malloc'd array of *count malloc'd strings (free each, then the array).
 * A file without pipeline.steps gives SF_OK with *count 0. Malformed YAML
 * gives SF_ERR_FORMAT naming the file, line and column.
 */
sf_err sf_pipeline_yaml_steps(const char *path, char ***names, size_t *count,
			      sf_error *err);

/* The same from memory (for tests and the fuzz target). */
sf_err sf_pipeline_yaml_steps_mem(const void *data, size_t len, const char *name,
				  char ***names, size_t *count, sf_error *err);

void sf_pipeline_yaml_names_free(char **names, size_t count);

#endif
