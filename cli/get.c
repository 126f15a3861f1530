/*
 * vdctl get [SERVICE]: the replicas the engines hold, like `docker ps`.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "vd/clock.h"
#include "vd/health.h"
#include "vd/state.h"
#include "vd/units.h"

static const char usage[] =
	"usage: vdctl get [-o table|json] [--json] [--all-owners] [SERVICE]\n"
	"\n"
	"List the replicas this state directory made, on every engine that answers:\n"
	"service, replica, backend, state, health (one check now, as the service's\n"
	"manifest says), cpus, memory, the address it answers on, and how long it\n"
	"has run.\n"
	"\n"
	"options:\n"
	"   -o, --output FORMAT   table (the default) or json\n"
	"   --json                the same as -o json\n"
	"   --all-owners          also the replicas other state directories made,\n"
	"                         with an OWNER column (\"this\" for this one's)\n"
	"   -h, --help            show this help\n"
	"\n"
	"exit status: 0 listed; 2 bad arguments; 3 no engine answered\n";

static const char *
age(int64_t started_ns, char *buf, size_t size)
{
	int64_t s;

	if (!started_ns)
		return "-";
	s = (vd_clock_wall_ns() - started_ns) / 1000000000;
	if (s < 0)
		s = 0;
	if (s < 120)
		snprintf(buf, size, "%llds", (long long)s);
	else if (s < 7200)
		snprintf(buf, size, "%lldm", (long long)s / 60);
	else if (s < 172800)
		snprintf(buf, size, "%lldh", (long long)s / 3600);
	else
		snprintf(buf, size, "%lldd", (long long)s / 86400);
	return buf;
}

/* A health column's width: "connection refused", "HTTP 404". */
#define HEALTH_W 20

/*
 * One health check of each running replica, all at once, as its recorded
 * service says (a TCP check when nothing is recorded); the result of
 * replica i into names[i], "-" for one that does not run.
 */
static int
check_health(const struct vd_manifest *recorded, const struct vd_replica_list *l,
	     char (*names)[HEALTH_W], struct vd_error *err)
{
	struct vd_health_target *t = calloc(l->n + 1, sizeof(*t));
	size_t *at = calloc(l->n + 1, sizeof(*at)), n = 0;
	static struct vd_service tcp = { .health.kind = VD_HEALTH_TCP };

	if (!t || !at) {
		free(t);
		free(at);
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	}
	for (size_t i = 0; i < l->n; i++) {
		const struct vd_replica *r = &l->v[i];
		const struct vd_service *svc =
			recorded ? vd_manifest_find(recorded, r->labels.service) : NULL;

		snprintf(names[i], HEALTH_W, "-");
		if (r->state != VD_STATE_RUNNING)
			continue;
		t[n] = (struct vd_health_target){ svc ? svc : &tcp, r->host, r->host_port,
						  VD_HEALTH_TIMEOUT, 0, false };
		at[n++] = i;
	}
	vd_health_wait(t, n, 0, 0, 1000, NULL, NULL);
	for (size_t k = 0; k < n; k++)
		vd_health_describe(t[k].result, t[k].http_status, names[at[k]], HEALTH_W);
	free(t);
	free(at);
	return 0;
}

/* Does a recorded service run on BACKEND? */
static bool
uses(const struct vd_manifest *m, enum vd_backend backend)
{
	for (size_t i = 0; i < m->nservices; i++)
		if (m->services[i].backend == backend)
			return true;
	return false;
}

static bool
listed(const struct vd_replica_list *l, const char *service, int index)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].labels.index == index && strcmp(l->v[i].labels.service, service) == 0)
			return true;
	return false;
}

/*
 * The replicas a recorded service should have and that were not listed: one
 * row each, "unknown" when its engine did not answer, "failed" with why when
 * making it failed (vd_state_note_failure), else "missing". The reasons,
 * and those of listed replicas that failed their health gate, follow the
 * table.
 */
static void
absent(const struct vd_engines *es, const bool *down, const struct vd_manifest *rec,
       const struct vd_replica_list *l, const char *only, const char *dir, json_t *out,
       bool all)
{
	json_t *failures = vd_state_failures(dir);
	char name[96];

	for (size_t i = 0; rec && i < rec->nservices; i++) {
		const struct vd_service *s = &rec->services[i];
		const struct vd_engine *e = vd_engines_for(es, s->backend);
		bool dead = e && down[e - es->v];

		if (only && strcmp(only, s->name) != 0)
			continue;
		for (int k = 0; k < s->replicas; k++) {
			char key[16];
			const char *why, *state;

			snprintf(key, sizeof(key), "%d", k);
			why = json_string_value(json_object_get(json_object_get(failures, s->name),
								key));
			if (!dead && listed(l, s->name, k))
				continue;
			state = dead ? "unknown" : why ? "failed" : "missing";
			vd_replica_name(name, sizeof(name), s->name, k);
			if (out) {
				json_array_append_new(out, json_pack(
					"{s:s, s:i, s:s, s:s, s:s, s:s, s:s?}", "service", s->name,
					"index", k, "name", name, "backend",
					vd_manifest_backend_name(s->backend), "engine",
					e ? e->name : "", "state", state, "reason",
					dead ? "its engine did not answer" : why));
				continue;
			}
			printf("%s%-20s %-8d %-8s %-8s %-18s %-5s %-9s %-21s %s\n",
			       all ? "this     " : "", s->name, k,
			       vd_manifest_backend_name(s->backend), state,
			       dead ? "engine down" : "-", "-", "-", "-", "-");
		}
	}
	/* why, after the table */
	for (size_t i = 0; !out && rec && i < rec->nservices; i++) {
		const char *key;
		json_t *why;

		if (only && strcmp(only, rec->services[i].name) != 0)
			continue;
		json_object_foreach(json_object_get(failures, rec->services[i].name), key, why) {
			vd_replica_name(name, sizeof(name), rec->services[i].name, atoi(key));
			printf("%s: %s\n", name, json_string_value(why));
		}
	}
	json_decref(failures);
}

/* A service that is neither recorded nor held by an engine is unknown. */
static int
unknown(const char *dir, const char *service, const struct vd_replica_list *l,
	struct vd_error *err)
{
	const char **names = calloc(l->n + 1, sizeof(*names));
	int ret = 0;

	for (size_t i = 0; i < l->n; i++) {
		if (strcmp(l->v[i].labels.service, service) == 0) {
			free(names);
			return 0;
		}
		if (names)
			names[i] = l->v[i].labels.service;
	}
	if (!vd_state_known(dir, service))
		ret = vd_state_unknown(dir, service, names, names ? l->n : 0, err);
	free(names);
	return ret;
}

int
cmd_get(int argc, char **argv, struct vd_error *err)
{
	static const struct option options[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "json", no_argument, NULL, 'j' },
		{ "all-owners", no_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vd_node_config node;
	struct vd_engines es;
	bool down[8] = { false };
	char owner[VD_STATE_ID_LEN + 1];
	struct vd_replica_list l = { NULL, 0 };
	char (*healths)[HEALTH_W] = NULL;
	struct vd_manifest *recorded = NULL;
	struct vd_state_held *held = NULL;
	size_t nheld = 0;
	struct vd_error ignore = VD_ERROR_INIT;
	const char *service = NULL;
	bool json = false, all = false;
	json_t *out = NULL;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "o:h", options, NULL)) != -1) {
		switch (c) {
		case 'o':
			if (strcmp(optarg, "json") == 0)
				json = true;
			else if (strcmp(optarg, "table") != 0)
				return cli_usage_error(err, "get", "unknown output '%s' (table, json)",
						       optarg);
			break;
		case 'j':
			json = true;
			break;
		case 'a':
			all = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			return cli_unknown_option(err, "get", options, argv[optind - 1]);
		}
	}
	if (argc - optind > 1)
		return cli_usage_error(err, "get", "give at most one SERVICE");
	if (optind < argc)
		service = argv[optind];
	if (service && !vd_manifest_valid_name(service))
		return cli_usage_error(err, "get", "'%s' is not a service name", service);
	cli_node(&node);
	/* the recorded services say which engines to ask and how to check
	 * health (without them, every engine, TCP) */
	if (vd_state_load_all(node.state_dir, &recorded, &held, &nheld, &ignore) < 0)
		recorded = NULL;
	vd_state_held_free(held, nheld);
	if (vd_engines_init(&es, &node, err) < 0) {
		vd_manifest_free(recorded);
		return -1;
	}
	for (size_t i = 0; recorded && i < recorded->nservices; i++)
		vd_engines_need(vd_engines_for(&es, recorded->services[i].backend),
				VD_ENGINE_ASK);
	if (all || !recorded || !recorded->nservices)
		vd_engines_need_all(&es, VD_ENGINE_ASK);
	if (vd_engines_observe(&es, all ? VD_OBSERVE_ALL_OWNERS : 0, &l, err) < 0) {
		vd_engines_release(&es);
		vd_manifest_free(recorded);
		return -1;
	}
	snprintf(owner, sizeof(owner), "%s", es.owner);
	/* an engine that did not answer is said, and its replicas marked */
	for (size_t i = 0; i < es.n; i++) {
		down[i] = es.v[i].asked && !es.v[i].up;
		if (down[i] && recorded && uses(recorded, es.v[i].backend))
			fprintf(stderr, "vdctl: warning: engine %s did not answer: %s\n",
				es.v[i].name, es.v[i].error.msg);
	}
	if (service && unknown(node.state_dir, service, &l, err) < 0) {
		vd_engines_release(&es);
		vd_replica_list_clear(&l);
		vd_manifest_free(recorded);
		return -1;
	}
	if (!(healths = calloc(l.n + 1, sizeof(*healths))) ||
	    check_health(recorded, &l, healths, err) < 0) {
		vd_engines_release(&es);
		free(healths);
		vd_manifest_free(recorded);
		vd_replica_list_clear(&l);
		return healths ? -1 : vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	}
	if (json)
		out = json_array();
	else
		printf("%s%-20s %-8s %-8s %-8s %-18s %-5s %-9s %-21s %s\n", all ? "OWNER    " : "",
		       "SERVICE", "REPLICA", "BACKEND", "STATE", "HEALTH", "CPUS", "MEMORY",
		       "ADDRESS", "AGE");
	for (size_t i = 0; i < l.n; i++) {
		const struct vd_replica *r = &l.v[i];
		char cpus[16], mem[32], addr[96], a[32];
		const char *h;

		if (service && strcmp(r->labels.service, service) != 0)
			continue;
		h = healths[i];
		vd_units_format_milli_cpus(r->milli_cpus, cpus, sizeof(cpus));
		vd_units_format_size(r->memory_bytes, mem, sizeof(mem));
		if (r->host_port)
			snprintf(addr, sizeof(addr), strchr(r->host, ':') ? "[%s]:%d" : "%s:%d",
				 r->host, r->host_port);
		else
			snprintf(addr, sizeof(addr), "-");
		if (json) {
			json_array_append_new(out, json_pack(
				"{s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:i, s:I, s:s*}",
				"service", r->labels.service, "index", r->labels.index, "name", r->name,
				"backend", vd_manifest_backend_name(r->backend), "engine", r->engine, "state",
				vd_replica_state_name(r->state), "health", h, "milli_cpus",
				(json_int_t)r->milli_cpus, "memory_bytes", (json_int_t)r->memory_bytes,
				"host", r->host, "port", r->host_port, "started_ns",
				(json_int_t)r->started_ns, "id", r->id));
			if (all)
				json_object_set_new(json_array_get(out, json_array_size(out) - 1),
						    "owner", r->labels.owner ? json_string(r->labels.owner)
									     : json_null());
		} else {
			if (all)
				printf("%-8.8s ", !r->labels.owner || !*r->labels.owner ? "none"
						  : strcmp(r->labels.owner, owner) == 0 ? "this"
						  : r->labels.owner);
			printf("%-20s %-8d %-8s %-8s %-18s %-5s %-9s %-21s %s\n", r->labels.service,
			       r->labels.index, vd_manifest_backend_name(r->backend),
			       vd_replica_state_name(r->state), h, cpus, mem, addr,
			       age(r->started_ns, a, sizeof(a)));
		}
	}
	absent(&es, down, recorded, &l, service, node.state_dir, json ? out : NULL, all);
	if (json) {
		json_dumpf(out, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(out);
	}
	vd_engines_release(&es);
	free(healths);
	vd_manifest_free(recorded);
	vd_replica_list_clear(&l);
	return 0;
}
