/*
 * vdctl validate [--json] [-q] FILE...: check manifests without touching
 * any engine, and say what they declare (one line per service, or the
 * normalised JSON form for tools).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "vd/manifest.h"
#include "vd/units.h"

static const char usage[] =
	"usage: vdctl validate [--json] [-q] FILE...\n"
	"\n"
	"Check manifests (see vdctl-manifest(5)) as one set: every mistake is\n"
	"reported as FILE:LINE:COL: message, and nothing is changed anywhere.\n"
	"On success print \"ok\" and one line per service. FILE may be '-' for\n"
	"standard input.\n"
	"\n"
	"options:\n"
	"   --json       print the normalised form instead: the manifest's keys,\n"
	"                every default filled in, null where unset, durations in\n"
	"                ms (interval_ms), memory in bytes (memory_bytes), CPUs\n"
	"                in milli-CPUs (milli_cpus)\n"
	"   -q, --quiet  print nothing on success; only the exit status tells\n"
	"   -h, --help   show this help\n"
	"\n"
	"exit status: 0 valid, 2 invalid (or unreadable) manifests\n";

static const char *
plural(long n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

/* "docker IMAGE" or "libvirt kernel PATH" / "libvirt disk PATH". */
static void
print_workload(const struct vd_service *s)
{
	if (s->backend == VD_BACKEND_DOCKER)
		printf("docker %s", s->image);
	else if (s->vm.kernel)
		printf("libvirt kernel %s%s%s", s->vm.kernel, s->vm.initrd ? " + " : "",
		       s->vm.initrd ? s->vm.initrd : "");
	else
		printf("libvirt disk %s", s->vm.disk);
}

static void
print_summary(const struct vd_service *s)
{
	char cpus[32], mem[32];

	printf("%s: ", s->name);
	print_workload(s);
	vd_units_format_milli_cpus(s->milli_cpus, cpus, sizeof(cpus));
	printf(", %d %s x %s %s, %s, port %d", s->replicas,
	       plural(s->replicas, "replica", "replicas"), cpus,
	       s->milli_cpus == 1000 ? "cpu" : "cpus",
	       vd_units_format_size(s->memory_bytes, mem, sizeof(mem)), s->port);
	if (s->balancer.enabled)
		printf(strchr(s->balancer.listen_host, ':') ? ", balancer [%s]:%d %s"
							    : ", balancer %s:%d %s",
		       s->balancer.listen_host, s->balancer.listen_port,
		       vd_manifest_policy_name(s->balancer.policy));
	if (s->autoscale.enabled)
		printf(", autoscale %d-%d", s->autoscale.min, s->autoscale.max);
	printf("\n");
}

static int
print_json(const struct vd_manifest *m, struct vd_error *err)
{
	json_t *j = vd_manifest_to_json(m);
	int ret;

	if (!j)
		return vd_error_set(err, VD_EXIT_FAILURE, "cannot build the JSON form");
	ret = json_dumpf(j, stdout, JSON_INDENT(2));
	json_decref(j);
	putchar('\n');
	return ret < 0 ? vd_error_set(err, VD_EXIT_FAILURE, "cannot write JSON") : 0;
}

int
cmd_validate(int argc, char **argv, struct vd_error *err)
{
	static const struct option options[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_manifest *m;
	bool json = false, quiet = false;
	int c, ret = 0;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "qh", options, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			return cli_unknown_option(err, "validate", options, argv[optind - 1]);
		}
	}
	if (optind == argc)
		return cli_usage_error(err, "validate", "no manifest files given");
	if (vd_manifest_load((const char *const *)(argv + optind), (size_t)(argc - optind), &m,
			     &diags, err) < 0) {
		vd_diags_print(&diags, stderr);
		vd_diags_clear(&diags);
		return -1;
	}
	if (json) {
		ret = print_json(m, err);
	} else if (!quiet) {
		printf("ok\n");
		for (size_t i = 0; i < m->nservices; i++)
			print_summary(&m->services[i]);
	}
	vd_manifest_free(m);
	return ret;
}
