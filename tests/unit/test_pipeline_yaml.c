/* Unit tests of the pipeline.yaml step-order reader. */
#include <string.h>

#include "check.h"
#include "sf_pipeline_yaml.h"

static const char sample[] =
	"distilabel:\n  version: 1.4.0\npipeline:\n  name: p\n  description: \"x \\u2728\"\n"
	"  steps:\n  - step:\n      name: load_data\n      resources:\n        replicas: 1\n"
	"      runtime_parameters_info:\n      - name: resources\n        optional: true\n"
	"    name: load_data\n  - step:\n      name: embed\n    name: embed\n"
	"  - step: {name: annotate}\n    name: annotate\n  connections:\n  - from: load_data\n"
	"    to:\n    - embed\n";

int main(void)
{
	char **names = NULL;
	size_t count = 0;
	sf_error err;
	sf_err rc;

	rc = sf_pipeline_yaml_steps_mem(sample, strlen(sample), "sample.yaml", &names, &count, &err);
	CHECK(rc == SF_OK, "sample parses");
	CHECK_EQ_U64(count, 3, "three steps");
	CHECK(count == 3 && strcmp(names[0], "load_data") == 0 && strcmp(names[1], "embed") == 0 &&
	      strcmp(names[2], "annotate") == 0, "steps in pipeline order");
	sf_pipeline_yaml_names_free(names, count);

	rc = sf_pipeline_yaml_steps_mem("a: 1\n", 5, "plain.yaml", &names, &count, &err);
	CHECK(rc == SF_OK && count == 0, "no pipeline.steps: empty list");
	sf_pipeline_yaml_names_free(names, count);

	rc = sf_pipeline_yaml_steps_mem("pipeline:\n  steps: [\n", 21, "bad.yaml", &names, &count, &err);
	CHECK(rc == SF_ERR_FORMAT && strstr(err.message, "'bad.yaml': line"), "malformed YAML names file and line");

	rc = sf_pipeline_yaml_steps_mem("", 0, "empty.yaml", &names, &count, &err);
	CHECK(rc == SF_OK && count == 0, "empty document");
	sf_pipeline_yaml_names_free(names, count);
	return check_done();
}
