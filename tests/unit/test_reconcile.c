/*
 * Plans run by reconcile, end to end through the engine layer and the
 * libvirt driver, against libvirt's test driver (test:///default: an
 * in-process fake hypervisor whose state all connections of the process
 * share). This proves the plan-to-reconcile path (phases in order, the
 * health gate between them, surge replicas, removals highest first, the
 * engine layer's tagging), not that VMs boot: tests/integration does that
 * with QEMU.
 *
 * The test driver runs nothing, so the test plays the workload: reconcile's
 * on_started hook opens a listener on each replica's forwarded port, and a
 * TCP health check then passes. A replica the test refuses to serve fails
 * its health gate.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vdtest.h"
#include "vd/apply.h"
#include "vd/engine.h"
#include "vd/plan.h"
#include "vd/reconcile.h"

#define MANIFEST "/srv/reconcile.yaml"
#define MiB (1024 * 1024LL)
#define MAX_LISTEN 64

static char *cmdline_v1 = "console=ttyS0 v=1";
static char *cmdline_v2 = "console=ttyS0 v=2";

struct fixture {
	char dir[64];
	struct vd_node_config node;
	struct vd_engines es;
	struct vd_driver *hold; /* keeps the test driver's state alive */
	struct vd_service svc;
	struct vd_desired want;
	int listeners[MAX_LISTEN];
	size_t nlisten;
	char refuse[96]; /* a replica name the workload does not serve */
	char log[8192];  /* progress lines */
	FILE *progress;
};

/* The hook: serve the replica's port, unless told not to. */
static void
serve(void *arg, const struct vd_replica *r)
{
	struct fixture *f = arg;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int fd;

	if (strcmp(r->name, f->refuse) == 0 || f->nlisten == MAX_LISTEN || r->host_port <= 0)
		return;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)r->host_port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 16) == 0)
		f->listeners[__atomic_fetch_add(&f->nlisten, 1, __ATOMIC_SEQ_CST)] = fd;
	else if (fd >= 0)
		close(fd);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct vd_error err = VD_ERROR_INIT;

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/vd-reconcile-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->node.libvirt_uri = "test:///default";
	f->node.docker_endpoint = "unix:///nonexistent/docker.sock";
	f->node.state_dir = f->dir;
	if (vd_engines_init(&f->es, &f->node, &err) < 0 || vd_engines_own(&f->es, &err) < 0 ||
	    vd_engine_connect(vd_engines_for(&f->es, VD_BACKEND_LIBVIRT), &f->hold, &err) < 0)
		return -1;
	f->svc.name = "rc";
	f->svc.backend = VD_BACKEND_LIBVIRT;
	f->svc.vm.kernel = "/etc/hostname"; /* the test driver boots nothing */
	f->svc.vm.cmdline = cmdline_v1;
	f->svc.vm.accel = VD_ACCEL_TCG;
	f->svc.port = 8080;
	f->svc.replicas = 3;
	f->svc.milli_cpus = 1000;
	f->svc.memory_bytes = 64 * MiB;
	f->svc.health.kind = VD_HEALTH_TCP;
	f->svc.health.timeout_ms = 500;
	f->svc.update.max_surge = 1;
	f->want.svc = &f->svc;
	f->want.manifest = MANIFEST;
	f->progress = fmemopen(f->log, sizeof(f->log) - 1, "w");
	setvbuf(f->progress, NULL, _IOLBF, 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	vd_driver_close(f->hold); /* the test driver forgets everything */
	for (size_t i = 0; i < f->nlisten; i++)
		close(f->listeners[i]);
	fclose(f->progress);
	vd_engines_release(&f->es);
	vt_rm_tree(f->dir);
	free(f);
	return 0;
}

/* What the engines hold now. */
static void
observe(struct fixture *f, struct vd_replica_list *have)
{
	struct vd_error err = VD_ERROR_INIT;

	vd_replica_list_clear(have);
	vd_engines_need(vd_engines_for(&f->es, VD_BACKEND_LIBVIRT), VD_ENGINE_REQUIRE);
	if (vd_engines_observe(&f->es, 0, have, &err) < 0)
		fail_msg("observe: %s", err.msg);
}

/* Plan the service against what is there, and run the plan. */
static int
apply(struct fixture *f, struct vd_plan *plan, struct vd_reconcile_result *res,
      struct vd_error *err)
{
	struct vd_replica_list have = { NULL, 0 };
	struct vd_reconcile_opts o = {
		.engines = &f->es, .parallel = 4, .wait = true, .timeout_ms = 1500,
		.stop_grace_s = 0, .progress = f->progress, .on_started = serve, .hook_arg = f,
	};
	int ret;

	vd_plan_spec_hash(&f->svc, f->want.spec_hash);
	assert_int_equal(vd_apply_place(&f->want, 1, &f->es, err), 0);
	assert_string_equal(f->want.engine, "libvirt");
	observe(f, &have);
	vd_plan_clear(plan);
	assert_int_equal(vd_plan_make(&f->want, 1, &have, NULL, plan, err), 0);
	ret = vd_reconcile_run(plan, &o, res, err);
	vd_plan_clear(plan); /* it points into have */
	vd_replica_list_clear(&have);
	return ret;
}

/* The replicas held now: N of them, indices 0..N-1, all of cmdline's spec. */
static void
expect(struct fixture *f, int n, const char *spec_hash)
{
	struct vd_replica_list have = { NULL, 0 };

	observe(f, &have);
	assert_int_equal(have.n, n);
	for (int i = 0; i < n; i++) {
		assert_string_equal(have.v[i].labels.service, "rc");
		assert_int_equal(have.v[i].labels.index, i);
		assert_string_equal(have.v[i].engine, "libvirt");
		assert_int_equal(have.v[i].state, VD_STATE_RUNNING);
		assert_int_equal(have.v[i].milli_cpus, f->svc.milli_cpus);
		assert_int_equal(have.v[i].memory_bytes, f->svc.memory_bytes);
		if (spec_hash)
			assert_string_equal(have.v[i].labels.spec_hash, spec_hash);
	}
	vd_replica_list_clear(&have);
}

static void
test_create_then_nothing(void **state)
{
	struct fixture *f = *state;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_reconcile_result res;
	struct vd_plan plan = { 0 };

	assert_int_equal(apply(f, &plan, &res, &err), 0);
	assert_int_equal(res.created, 3);
	assert_int_equal(res.failed, 0);
	expect(f, 3, f->want.spec_hash);
	fflush(f->progress);
	assert_non_null(strstr(f->log, "vd-rc-2"));
	assert_non_null(strstr(f->log, "healthy"));
	/* again: nothing to do, nothing done */
	assert_int_equal(apply(f, &plan, &res, &err), 0);
	assert_int_equal(res.created + res.removed + res.replaced + res.resized + res.started, 0);
}

static void
test_scale_down_removes_the_highest(void **state)
{
	struct fixture *f = *state;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_reconcile_result res;
	struct vd_plan plan = { 0 };

	assert_int_equal(apply(f, &plan, &res, &err), 0);
	f->svc.replicas = 1;
	assert_int_equal(apply(f, &plan, &res, &err), 0);
	assert_int_equal(res.removed, 2);
	expect(f, 1, f->want.spec_hash);
	f->svc.replicas = 2;
	assert_int_equal(apply(f, &plan, &res, &err), 0);
	assert_int_equal(res.created, 1);
	expect(f, 2, f->want.spec_hash);
}

/* A changed spec: a surge replica first, then each old one in place, then
 * the surge goes; indices stay 0..2 and all are of the new spec. */
static void
test_rolling_replacement(void **state)
{
	struct fixture *f = *state;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_reconcile_result res;
	struct vd_plan plan = { 0 };
	char *surge, *first_replace, *surge_gone;

	assert_int_equal(apply(f, &plan, &res, &err), 0);
	rewind(f->progress);
	memset(f->log, 0, sizeof(f->log));
	f->svc.vm.cmdline = cmdline_v2;
	assert_int_equal(apply(f, &plan, &res, &err), 0);
	assert_int_equal(res.replaced, 3);
	assert_int_equal(res.created, 1); /* the surge replica */
	assert_int_equal(res.removed, 1); /* and its removal */
	expect(f, 3, f->want.spec_hash);
	fflush(f->progress);
	surge = strstr(f->log, "vd-rc-3");
	first_replace = strstr(f->log, "replaced");
	surge_gone = strstr(f->log, "removed (surge no longer needed)");
	assert_non_null(surge);
	assert_non_null(first_replace);
	assert_non_null(surge_gone);
	/* the order the phases promise */
	assert_true(surge < first_replace);
	assert_true(first_replace < surge_gone);
}

/* A replacement that does not come up stops the rollout: the next old
 * replica is left as it was, and the error names the one that failed. */
static void
test_health_gate_stops_the_rollout(void **state)
{
	struct fixture *f = *state;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_reconcile_result res;
	struct vd_plan plan = { 0 };
	struct vd_replica_list have = { NULL, 0 };
	char old_hash[VD_SPEC_HASH_LEN + 1];
	size_t old = 0;

	assert_int_equal(apply(f, &plan, &res, &err), 0);
	snprintf(old_hash, sizeof(old_hash), "%s", f->want.spec_hash);
	f->svc.vm.cmdline = cmdline_v2;
	snprintf(f->refuse, sizeof(f->refuse), "vd-rc-0");
	assert_int_equal(apply(f, &plan, &res, &err), -1);
	assert_true(res.failed >= 1);
	assert_non_null(strstr(err.msg, "vd-rc-0"));
	observe(f, &have);
	for (size_t i = 0; i < have.n; i++)
		old += strcmp(have.v[i].labels.spec_hash, old_hash) == 0;
	/* one replaced (and sick), the surge up, the others still the old spec */
	assert_true(old >= 1);
	vd_replica_list_clear(&have);
	/* served again, the next apply finishes the job */
	f->refuse[0] = '\0';
	assert_int_equal(apply(f, &plan, &res, &err), 0);
	expect(f, 3, f->want.spec_hash);
}

/* A second state directory on the same engine sees none of the first's
 * replicas, cannot remove them, and cannot take their names. */
static void
test_another_state_directory(void **state)
{
	struct fixture *f = *state;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_reconcile_result res;
	struct vd_plan plan = { 0 };
	struct vd_node_config other = f->node;
	struct vd_engines es2;
	struct vd_replica_list seen = { NULL, 0 };
	struct vd_driver *d = NULL;
	char dir2[] = "/tmp/vd-reconcile-2-XXXXXX";

	assert_int_equal(apply(f, &plan, &res, &err), 0);
	assert_non_null(mkdtemp(dir2));
	other.state_dir = dir2;
	assert_int_equal(vd_engines_init(&es2, &other, &err), 0);
	assert_string_equal(es2.owner, ""); /* none until it makes something */
	assert_int_equal(vd_engines_own(&es2, &err), 0);
	assert_int_equal(strlen(es2.owner), VD_STATE_ID_LEN);
	assert_string_not_equal(es2.owner, f->es.owner);
	vd_engines_need(vd_engines_for(&es2, VD_BACKEND_LIBVIRT), VD_ENGINE_REQUIRE);
	assert_int_equal(vd_engines_observe(&es2, 0, &seen, &err), 0);
	assert_int_equal(seen.n, 0);
	/* shown only when asked for every owner, each with its owner */
	assert_int_equal(vd_engines_observe(&es2, VD_OBSERVE_ALL_OWNERS, &seen, &err), 0);
	assert_int_equal(seen.n, 3);
	assert_string_equal(seen.v[0].labels.owner, f->es.owner);
	/* its driver refuses to touch them */
	assert_int_equal(vd_engine_connect(vd_engines_for(&es2, VD_BACKEND_LIBVIRT), &d, &err), 0);
	assert_int_equal(vd_driver_remove(d, seen.v[0].id, &err), -1);
	assert_non_null(strstr(err.msg, "another state directory"));
	vd_driver_close(d);
	vd_replica_list_clear(&seen);
	/* and a plan of its own for the same service cannot take their names */
	vd_engines_release(&f->es);
	f->es = es2; /* the fixture's set now speaks for the second directory */
	for (size_t i = 0; i < f->es.n; i++)
		f->es.v[i].set = &f->es;
	vd_error_clear(&err);
	assert_int_equal(apply(f, &plan, &res, &err), -1);
	assert_non_null(strstr(err.msg, "name is taken"));
	assert_non_null(strstr(err.msg, "another state directory made"));
	vt_rm_tree(dir2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_then_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scale_down_removes_the_highest, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rolling_replacement, setup, teardown),
		cmocka_unit_test_setup_teardown(test_health_gate_stops_the_rollout, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_another_state_directory, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
