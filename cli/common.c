/*
 * What several commands share: the node configuration from the global
 * options, loading manifests with their diagnostics, and the run options.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "vd/state.h"
#include "vd/units.h"

void
cli_node(struct vd_node_config *node)
{
	memset(node, 0, sizeof(*node));
	node->docker_endpoint = cli_globals.docker_host;
	node->libvirt_uri = cli_globals.libvirt_uri;
	node->state_dir = cli_state_dir();
}

const char *
cli_state_dir(void)
{
	return cli_globals.state_dir ? cli_globals.state_dir : vd_state_dir_default();
}

int
cli_load(char *const *paths, size_t n, struct vd_manifest **m, struct vd_error *err)
{
	struct vd_diags diags = VD_DIAGS_INIT;

	if (vd_manifest_load((const char *const *)paths, n, m, &diags, err) < 0) {
		vd_diags_print(&diags, stderr);
		vd_diags_clear(&diags);
		return -1;
	}
	return 0;
}

void
cli_apply_defaults(struct vd_apply_opts *o, struct vd_node_config *node)
{
	cli_node(node);
	memset(o, 0, sizeof(*o));
	o->node = node;
	o->state_dir = node->state_dir;
	o->out = stdout;
	o->run.wait = true;
	o->run.stop_grace_s = -1;
	o->run.progress = stdout;
}

int
cli_run_option(const char *cmd, int c, const char *arg, struct vd_apply_opts *o,
	       struct vd_error *err)
{
	struct vd_error why = VD_ERROR_INIT;
	int64_t v;

	switch (c) {
	case CLI_OPT_WAIT:
		o->run.wait = true;
		return 1;
	case CLI_OPT_NO_WAIT:
		o->run.wait = false;
		return 1;
	case CLI_OPT_TIMEOUT:
		if (vd_units_parse_duration_ms(arg, &v, &why) < 0 || v <= 0)
			return cli_usage_error(err, cmd, "invalid --timeout '%s': %s", arg,
					       why.msg[0] ? why.msg : "must be more than 0");
		o->run.timeout_ms = v;
		return 1;
	case CLI_OPT_PARALLEL:
		if (vd_units_parse_int64(arg, 1, 64, &v, &why) < 0)
			return cli_usage_error(err, cmd, "invalid --parallel '%s': %s", arg, why.msg);
		o->run.parallel = (int)v;
		return 1;
	}
	return 0;
}

/* What SERVICE's manifest declared: as its record says, or (a record from
 * before vdctl kept that) what the record holds before this command. */
static int
declared(const char *dir, const char *service, struct vd_state_declared *out)
{
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_error e = VD_ERROR_INIT;
	struct vd_manifest *m = NULL;

	if (vd_state_declared_of(dir, service, out) == 0)
		return 0;
	if (vd_state_load(dir, service, &m, &diags, &e) < 0) {
		vd_diags_clear(&diags);
		return -1;
	}
	*out = (struct vd_state_declared){ m->services[0].replicas, m->services[0].milli_cpus,
					   m->services[0].memory_bytes };
	vd_manifest_free(m);
	return 0;
}

int
cli_apply_recorded(struct vd_manifest *m, struct vd_apply_opts *o, struct vd_error *err)
{
	struct vd_apply_result res;
	struct vd_desired *want = NULL;
	char **idents = calloc(m->nservices + 1, sizeof(*idents));
	struct vd_state_declared *decl = calloc(m->nservices + 1, sizeof(*decl));
	char **made = NULL;
	char buf[4096];
	int ret;

	if (!idents || !decl) {
		free(idents);
		free(decl);
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	}
	/* keep the identity of the manifest each service came from */
	for (size_t i = 0; i < m->nservices; i++)
		if (vd_state_manifest_of(o->state_dir, m->services[i].name, buf, sizeof(buf)) == 0)
			idents[i] = strdup(buf);
	o->quiet_undeclared = true;
	ret = vd_apply_desired(m, idents, &want, &made, err);
	/* what the manifests declared stays what they declared: this command
	 * changes the desired state, not them */
	for (size_t i = 0; ret == 0 && i < m->nservices; i++)
		if (declared(o->state_dir, m->services[i].name, &decl[i]) == 0)
			want[i].declared = &decl[i];
	if (ret == 0)
		ret = vd_apply_anywhere(want, m->nservices, o, &res, err);
	vd_apply_desired_free(want, made, m->nservices);
	for (size_t i = 0; i < m->nservices; i++)
		free(idents[i]);
	free(idents);
	free(decl);
	return ret;
}

int
cli_load_recorded(const char *service, struct vd_manifest **m, struct vd_error *err)
{
	struct vd_diags diags = VD_DIAGS_INIT;

	if (vd_state_load(cli_state_dir(), service, m, &diags, err) < 0) {
		vd_diags_print(&diags, stderr);
		vd_diags_clear(&diags);
		return -1;
	}
	return 0;
}

/*
 * An autoscaled service's count is the autoscaler's: an apply keeps the
 * count recorded for it (the manifest's `replicas` is where it starts),
 * moved inside min..max when the bounds changed.
 */
static void
keep_autoscaled(struct vd_manifest *m, FILE *out)
{
	for (size_t i = 0; i < m->nservices; i++) {
		struct vd_service *s = &m->services[i];
		struct vd_diags diags = VD_DIAGS_INIT;
		struct vd_error e = VD_ERROR_INIT;
		struct vd_manifest *rec = NULL;
		int n = s->replicas;

		if (!s->autoscale.enabled)
			continue;
		if (vd_state_load(cli_state_dir(), s->name, &rec, &diags, &e) == 0 &&
		    rec->services[0].autoscale.enabled)
			n = rec->services[0].replicas;
		vd_diags_clear(&diags);
		vd_manifest_free(rec);
		n = n < s->autoscale.min ? s->autoscale.min : n > s->autoscale.max ? s->autoscale.max : n;
		if (n != s->replicas && out)
			fprintf(out, "%s: autoscaled: %d replica%s (the manifest says %d)\n", s->name,
				n, n == 1 ? "" : "s", s->replicas);
		s->replicas = n;
	}
}

int
cli_apply_files(char *const *paths, size_t n, struct vd_apply_opts *o,
		struct vd_apply_result *res, struct vd_error *err)
{
	struct vd_manifest *m = NULL;
	struct vd_desired *want = NULL;
	char **idents = NULL;
	int ret;

	if (cli_load(paths, n, &m, err) < 0)
		return -1;
	keep_autoscaled(m, o->out);
	ret = vd_apply_desired(m, NULL, &want, &idents, err);
	if (ret == 0)
		ret = vd_apply_anywhere(want, m->nservices, o, res, err);
	vd_apply_desired_free(want, idents, m->nservices);
	vd_manifest_free(m);
	return ret;
}
