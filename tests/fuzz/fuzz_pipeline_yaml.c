/* Fuzz target: the pipeline.yaml step-order reader on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>

#include "sf_pipeline_yaml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char **names = NULL;
	size_t count = 0;
	sf_error err;

	if (sf_pipeline_yaml_steps_mem(data, size, "fuzz.yaml", &names, &count, &err) == SF_OK)
		sf_pipeline_yaml_names_free(names, count);
	return 0;
}
