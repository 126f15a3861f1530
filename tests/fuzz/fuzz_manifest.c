/*
 * libFuzzer target for the manifest reader and checker: any bytes in, a
 * manifest or diagnostics out, nothing leaked, nothing crashed.
 */
#include <stddef.h>
#include <stdint.h>

#include "vd/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vd_error err = VD_ERROR_INIT;
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_manifest *m = NULL;

	if (vd_manifest_parse("fuzz.yaml", (const char *)data, size, &m, &diags, &err) == 0) {
		json_t *j = vd_manifest_to_json(m);

		json_decref(j);
		vd_manifest_free(m);
	}
	vd_diags_clear(&diags);
	return 0;
}
