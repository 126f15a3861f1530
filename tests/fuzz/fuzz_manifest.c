/*
 * libFuzzer target for the manifest reader and checker: any bytes in, a
 * manifest or diagnostics out, nothing leaked, nothing crashed. And for the
 * serializer: each service accepted, written as JSON the way the state
 * directory records it and read back, must come back the same (its JSON
 * the same), or the fuzzer aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vd/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *
text_of(const struct vd_service *s, unsigned flags)
{
	json_t *j = vd_manifest_service_json(s, flags);
	char *text = j ? json_dumps(j, JSON_COMPACT | VD_MANIFEST_JSON_PRECISION) : NULL;

	json_decref(j);
	return text;
}

static void
round_trip(const struct vd_service *s)
{
	struct vd_error err = VD_ERROR_INIT;
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_manifest *back = NULL;
	char *once = text_of(s, 0), *twice;

	if (!once)
		return; /* out of memory */
	if (vd_manifest_parse("fuzz.yaml", once, strlen(once), &back, &diags, &err) < 0)
		abort(); /* the serializer wrote what the parser refuses */
	twice = text_of(&back->services[0], 0);
	if (twice && strcmp(once, twice) != 0)
		abort(); /* a field did not come back */
	free(twice);
	vd_manifest_free(back);
	vd_diags_clear(&diags);
	free(once);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vd_error err = VD_ERROR_INIT;
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_manifest *m = NULL;

	if (vd_manifest_parse("fuzz.yaml", (const char *)data, size, &m, &diags, &err) == 0) {
		json_t *j = vd_manifest_to_json(m);

		json_decref(j);
		for (size_t i = 0; i < m->nservices; i++)
			round_trip(&m->services[i]);
		vd_manifest_free(m);
	}
	vd_diags_clear(&diags);
	return 0;
}
