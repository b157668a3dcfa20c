/*
 * Fuzz target: the configuration reader on arbitrary bytes. Besides not
 * crashing, it checks two promises of sf_config.h: a failed load leaves
 * the configuration as it was, and every error names the document.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sf_config config, before;
	sf_error err;
	char *printed = NULL;
	size_t printed_size = 0;
	FILE *out;

	sf_config_init_defaults(&config);
	before = config;
	memset(&err, 0, sizeof(err));
	if (sf_config_load_mem(&config, data, size, "fuzz.yaml", &err) != SF_OK) {
		if (config.pack_level != before.pack_level || config.gc_max_bytes != before.gc_max_bytes ||
		    config.file_count != 0 || strncmp(err.message, "'fuzz.yaml': ", 13) != 0)
			abort();
		sf_config_release(&config);
		return 0;
	}
	/* What loads must print as YAML that loads back to the same values. */
	out = open_memstream(&printed, &printed_size);
	if (out) {
		sf_config again;

		sf_config_print(&config, out);
		fclose(out);
		sf_config_init_defaults(&again);
		if (sf_config_load_mem(&again, printed, printed_size, "printed", &err) != SF_OK ||
		    again.pack_level != config.pack_level || again.pack_frame_bytes != config.pack_frame_bytes ||
		    again.pack_threads != config.pack_threads ||
		    again.pack_long_distance != config.pack_long_distance ||
		    again.pack_dictionary != config.pack_dictionary ||
		    again.mount_cache_bytes != config.mount_cache_bytes ||
		    again.mount_threads != config.mount_threads ||
		    again.mount_metadata_bytes != config.mount_metadata_bytes ||
		    again.gc_max_age_seconds != config.gc_max_age_seconds ||
		    again.gc_max_bytes != config.gc_max_bytes)
			abort();
		sf_config_release(&again);
		free(printed);
	}
	sf_config_release(&config);
	return 0;
}
