/*
 * Load profiles (orchestrator/loadgen_profile.c): vdctl's format and the
 * Artillery subset read into requests already made into bytes, and every
 * key outside the subset named in an error at its FILE:LINE:COL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vdtest.h"
#include "vd/loadgen.h"

static struct vd_load_profile *
parse_ok(const char *text)
{
	struct vd_diags d = VD_DIAGS_INIT;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_load_profile *p = NULL;

	if (vd_load_profile_parse("t.yaml", text, strlen(text), NULL, &p, &d, &err) < 0) {
		vd_diags_print(&d, stderr);
		fail_msg("%s", err.msg);
	}
	vd_diags_clear(&d);
	return p;
}

/* Parse TEXT, expecting it refused; returns every diagnostic, one a line. */
static char *
parse_bad(const char *text)
{
	struct vd_diags d = VD_DIAGS_INIT;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_load_profile *p = NULL;
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	assert_int_equal(vd_load_profile_parse("t.yaml", text, strlen(text), NULL, &p, &d, &err), -1);
	assert_null(p);
	assert_int_equal(err.code, VD_EXIT_INPUT);
	vd_diags_print(&d, f);
	fclose(f);
	vd_diags_clear(&d);
	return out;
}

static void
test_artillery_example(void **state)
{
	struct vd_diags d = VD_DIAGS_INIT;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_load_profile *p;
	const struct vd_load_request *post = NULL;

	(void)state;
	assert_int_equal(vd_load_profile_read(vt_path("examples/load/artillery.yml"), NULL, &p, &d,
					      &err), 0);
	assert_int_equal(p->format, VD_LOAD_ARTILLERY);
	assert_int_equal(p->model, VD_LOAD_OPEN);
	assert_string_equal(p->host, "127.0.0.1");
	assert_int_equal(p->port, 8080);
	assert_int_equal(p->timeout_ms, 10000);
	assert_int_equal(p->nphases, 4);
	assert_int_equal(p->phases[0].duration_ms, 5000);
	assert_true(p->phases[0].rate == 5 && p->phases[0].ramp_to == 20);
	assert_int_equal(p->phases[1].max_vusers, 200);
	assert_true(p->phases[2].rate == 0 && p->phases[2].duration_ms == 2000); /* pause */
	assert_true(p->phases[3].rate == 20 && p->phases[3].ramp_to == 20); /* 60 in 3 s */
	assert_int_equal(p->nscenarios, 2);
	assert_int_equal(p->scenarios[0].weight, 10);
	assert_int_equal(p->scenarios[0].nsteps, 3);
	assert_int_equal(p->scenarios[0].steps[1].request, -1);
	assert_int_equal(p->scenarios[0].steps[1].think_ms, 100);
	for (size_t i = 0; i < p->nrequests; i++)
		if (!strcmp(p->requests[i].name, "POST /echo") && !post)
			post = &p->requests[i];
	assert_non_null(post);
	assert_non_null(strstr(post->wire, "POST /echo HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
	assert_non_null(strstr(post->wire, "Content-Type: application/json\r\n"));
	assert_non_null(strstr(post->wire, "\r\n\r\n{\"features\":[1.5,2.5,3],\"model\":\"small\"}"));
	assert_int_equal(post->wire_len, strlen(post->wire));
	vd_load_profile_free(p);
}

static void
test_vdctl_closed(void **state)
{
	struct vd_load_profile *p = parse_ok(
		"target: http://[::1]:9000/api/\n"
		"users: 50\nspawn_rate: 5\nwait_time: {min: 1s, max: 3s}\nduration: 1m\n"
		"requests:\n"
		"  - {path: /predict, method: post, weight: 10, body: 'x=1',"
		"     headers: {X-A: b}}\n"
		"  - {name: fb, path: /feedback, method: DELETE}\n");

	(void)state;
	assert_int_equal(p->model, VD_LOAD_CLOSED);
	assert_string_equal(p->host, "::1");
	assert_int_equal(p->port, 9000);
	assert_int_equal(p->users, 50);
	assert_true(p->spawn_rate == 5);
	assert_int_equal(p->wait_min_ms, 1000);
	assert_int_equal(p->wait_max_ms, 3000);
	assert_int_equal(p->duration_ms, 60000);
	assert_int_equal(p->nscenarios, 2);
	assert_int_equal(p->scenarios[0].weight, 10);
	assert_string_equal(p->scenarios[1].name, "fb");
	assert_string_equal(p->requests[0].wire,
			    "POST /api/predict HTTP/1.1\r\nHost: [::1]:9000\r\n"
			    "User-Agent: vdctl-load\r\nContent-Length: 3\r\nX-A: b\r\n\r\nx=1");
	assert_string_equal(p->requests[1].wire,
			    "DELETE /api/feedback HTTP/1.1\r\nHost: [::1]:9000\r\n"
			    "User-Agent: vdctl-load\r\n\r\n");
	vd_load_profile_free(p);
}

static void
test_vdctl_open(void **state)
{
	struct vd_load_profile *p = parse_ok(
		"target: http://localhost\nmodel: open\narrivals: poisson\nkeep_alive_pool: 8\n"
		"phases:\n"
		"  - {duration: 10s, arrival_rate: 1, ramp_to: 100}\n"
		"  - {pause: 5s}\n"
		"  - {duration: 4s, arrival_count: 100, max_vusers: 7}\n"
		"requests: [{path: /}]\n");

	(void)state;
	assert_int_equal(p->arrivals, VD_LOAD_POISSON);
	assert_int_equal(p->keep_alive_pool, 8);
	assert_int_equal(p->port, 80);
	assert_non_null(strstr(p->requests[0].wire, "Host: localhost\r\n"));
	assert_int_equal(vd_load_profile_duration_ms(p), 19000);
	assert_true(p->phases[2].rate == 25 && p->phases[2].max_vusers == 7);
	vd_load_profile_free(p);
}

/* Every key outside the Artillery subset is named, with its place. */
static void
test_artillery_unsupported_keys(void **state)
{
	static const char *const named[] = {
		"t.yaml:3:3: 'config.plugins' is not supported",
		"t.yaml:5:3: 'config.processor' is not supported",
		"t.yaml:6:3: 'config.payload' is not supported",
		"t.yaml:7:3: 'config.variables' is not supported",
		"t.yaml:8:3: 'config.environments' is not supported",
		"t.yaml:9:3: 'config.defaults' is not supported",
		"t.yaml:10:3: 'config.tls' is not supported",
		"t.yaml:13:5: 'config.http.pool' is not supported",
		"t.yaml:17:7: 'config.phases[0].rampUp' is not supported",
		"t.yaml:18:1: 'before' is not supported",
		"t.yaml:21:5: 'scenarios[0].engine' is not supported",
		"t.yaml:22:5: 'scenarios[0].beforeRequest' is not supported",
		"t.yaml:26:11: 'scenarios[0].flow[0].get.capture' is not supported",
		"t.yaml:27:11: 'scenarios[0].flow[0].get.expect' is not supported",
		"t.yaml:28:11: 'scenarios[0].flow[0].get.qs' is not supported",
		"t.yaml:29:9: 'scenarios[0].flow[1].loop' is not supported",
		"t.yaml:31:9: 'scenarios[0].flow[2].log' is not supported",
		"t.yaml:32:9: 'scenarios[0].flow[3].function' is not supported",
		"t.yaml:33:9: 'scenarios[0].flow[4].patch' is not supported",
		"t.yaml:36:16: templates ('{{ ... }}') in 'scenarios[0].flow[5].post.url'",
		"t.yaml:37:1: 'after' is not supported",
	};
	char *out = parse_bad(
		"config:\n"                                       /* 1 */
		"  target: http://127.0.0.1:8080\n"
		"  plugins: {expect: {}}\n"
		"  ensure: {p99: 200}\n"
		"  processor: ./x.js\n"                           /* 5 */
		"  payload: {path: users.csv}\n"
		"  variables: {id: [1, 2]}\n"
		"  environments: {}\n"
		"  defaults: {}\n"
		"  tls: {rejectUnauthorized: false}\n"            /* 10 */
		"  http:\n"
		"    timeout: 5\n"
		"    pool: 10\n"
		"  phases:\n"
		"    - duration: 10\n"                            /* 15 */
		"      arrivalRate: 5\n"
		"      rampUp: 3\n"
		"before: {flow: []}\n"
		"scenarios:\n"
		"  - name: a\n"                                   /* 20 */
		"    engine: http\n"
		"    beforeRequest: f\n"
		"    flow:\n"
		"      - get:\n"
		"          url: /x\n"                             /* 25 */
		"          capture: {json: $.id, as: id}\n"
		"          expect: [{statusCode: 200}]\n"
		"          qs: {a: 1}\n"
		"      - loop: [{get: {url: /y}}]\n"
		"        count: 3\n"                              /* 30 */
		"      - log: hi\n"
		"      - function: f\n"
		"      - patch: {url: /p}\n"
		"      - post:\n"
		"          json: {a: 1}\n"                        /* 35 */
		"          url: /z/{{ id }}\n"
		"after: {flow: []}\n");

	(void)state;
	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++)
		if (!strstr(out, named[i]))
			fail_msg("'%s' not in:\n%s", named[i], out);
	assert_non_null(strstr(out, "t.yaml:4:3: 'config.ensure' is not supported"));
	free(out);
}

static void
test_vdctl_mistakes(void **state)
{
	char *out = parse_bad(
		"target: https://127.0.0.1\n"
		"model: closed\n"
		"users: 0\n"
		"wait_time: {min: 2s, max: 1s, avg: 1s}\n"
		"phases: []\n"
		"requests:\n"
		"  - {path: nope, weight: -1, method: PATCH, json: {a: 1}, body: x}\n"
		"  - {path: /x, color: red}\n");

	(void)state;
	assert_non_null(strstr(out, "t.yaml:1:9: 'target': https targets are not supported"));
	assert_non_null(strstr(out, "t.yaml:3:8: invalid value '0' for 'users'"));
	assert_non_null(strstr(out, "t.yaml:4:31: unknown key 'avg' in 'wait_time' "
			       "(expected min, max)"));
	assert_non_null(strstr(out, "'wait_time.max' is below 'wait_time.min'"));
	assert_non_null(strstr(out, "t.yaml:5:9: 'phases' is for model: open"));
	assert_non_null(strstr(out, "model: closed needs 'duration'"));
	assert_non_null(strstr(out, "invalid value '-1' for 'requests[0].weight'"));
	assert_non_null(strstr(out, "invalid value 'PATCH' for 'requests[0].method'"));
	assert_non_null(strstr(out, "t.yaml:8:16: unknown key 'color' in 'requests[1]'"));
	free(out);
	out = parse_bad("target: http://127.0.0.1:8080\nrequests: [{path: /}]\nfoo: &a 1\n");
	assert_non_null(strstr(out, "t.yaml:3:6: YAML anchors (&a) are not supported in load "
			       "profiles"));
	free(out);
	out = parse_bad("config: {target: 'http://127.0.0.1', phases: [{arrivalRate: 1}]}\n"
			"scenarios: [{flow: [{think: soon}]}]\n");
	assert_non_null(strstr(out, "t.yaml:1:47: 'config.phases[0]' needs 'duration'"));
	assert_non_null(strstr(out, "t.yaml:2:29: invalid value 'soon' for "
			       "'scenarios[0].flow[0].think'"));
	free(out);
}

/* The reader and value readers manifests use, with their messages: near
 * misses named, one document, aliases refused without a crash, limits. */
static void
test_shared_reader(void **state)
{
	char *out = parse_bad(
		"target: http://127.0.0.1:8080\nmodel: clsoed\ntaget: x\nusers: 2\n"
		"duration: 1m\n"
		"requests: [{path: /, headers: {[a]: b, X: *h}, json: {[1]: 2, b: *y}}]\n");
	char *big;

	(void)state;
	assert_non_null(strstr(out, "t.yaml:2:8: invalid value 'clsoed' for 'model': expected "
			       "one of open, closed (did you mean 'closed'?)"));
	assert_non_null(strstr(out, "t.yaml:3:1: unknown key 'taget' (did you mean 'target'?)"));
	assert_non_null(strstr(out, "YAML aliases (*h) are not supported in load profiles"));
	assert_non_null(strstr(out, "keys in 'requests[0].json' must be plain names, not a "
			       "list"));
	free(out);
	out = parse_bad("target: http://127.0.0.1:8080\nusers: 1\nusers: 2\n"
			"duration: 1s\nrequests: [{path: /}]\n---\nusers: 3\n");
	assert_non_null(strstr(out, "t.yaml:3:1: duplicate key 'users' (first at line 2)\n"));
	assert_non_null(strstr(out, "t.yaml:6:1: more than one YAML document; load profiles "
			       "have one\n"));
	free(out);
	out = parse_bad("# nothing\n");
	assert_string_equal(out, "t.yaml:1:1: empty load profile\n");
	free(out);
	out = parse_bad("requests:\n\t- {path: /}\n");
	assert_non_null(strstr(out, "tabs cannot indent YAML"));
	free(out);
	big = calloc(1, (1 << 20) + 2);
	memset(big, '#', (1 << 20) + 1);
	out = parse_bad(big);
	assert_string_equal(out, "t.yaml:1:1: file is over 1 MiB; load profiles are limited "
			    "to that\n");
	free(out);
	free(big);
}

static void
test_unreadable(void **state)
{
	struct vd_diags d = VD_DIAGS_INIT;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_load_profile *p = NULL;

	(void)state;
	assert_int_equal(vd_load_profile_read("/nonexistent/load.yml", NULL, &p, &d, &err), -1);
	assert_int_equal(err.code, VD_EXIT_INPUT);
	assert_string_equal(err.msg, "1 error in /nonexistent/load.yml");
	assert_int_equal(d.n, 1);
	assert_int_equal(d.items[0].line, 0);
	assert_string_equal(d.items[0].msg, "cannot read: No such file or directory");
	vd_diags_clear(&d);
}

/* Parse TEXT with overrides OV: the profile, or NULL with err filled. */
static struct vd_load_profile *
parse_with(const char *text, const struct vd_load_overrides *ov, struct vd_error *err)
{
	struct vd_diags d = VD_DIAGS_INIT;
	struct vd_load_profile *p = NULL;

	vd_error_clear(err);
	if (vd_load_profile_parse("t.yaml", text, strlen(text), ov, &p, &d, err) < 0) {
		assert_null(p);
		assert_int_equal(d.n, 0); /* the file is right: the override is not */
	}
	vd_diags_clear(&d);
	return p;
}

/* --target makes the requests' bytes for the new target (base path, Host),
 * and recognises URLs written whole with the file's target; a profile may
 * then have no target of its own. Bad --target values are refused. */
static void
test_override_target(void **state)
{
	struct vd_error err = VD_ERROR_INIT;
	struct vd_load_overrides ov = { .target = "http://[::1]:9000/api/" };
	struct vd_load_profile *p;

	(void)state;
	p = parse_with("config: {target: 'http://127.0.0.1:8080/v1', phases: [{duration: 1, "
		       "arrivalRate: 1}]}\n"
		       "scenarios: [{flow: [{get: {url: /x}}, "
		       "{get: {url: 'http://127.0.0.1:8080/v1/y?z=1'}}]}]\n", &ov, &err);
	assert_non_null(p);
	assert_string_equal(p->target, "http://[::1]:9000/api/");
	assert_string_equal(p->host, "::1");
	assert_int_equal(p->port, 9000);
	assert_string_equal(p->requests[0].wire, "GET /api/x HTTP/1.1\r\nHost: [::1]:9000\r\n"
			    "User-Agent: vdctl-load\r\n\r\n");
	assert_string_equal(p->requests[1].wire, "GET /api/y?z=1 HTTP/1.1\r\nHost: [::1]:9000\r\n"
			    "User-Agent: vdctl-load\r\n\r\n");
	vd_load_profile_free(p);

	ov.target = "http://localhost:81";
	p = parse_with("users: 1\nduration: 1s\nrequests: [{path: /a, headers: {Host: h}}]\n",
		       &ov, &err);
	assert_non_null(p);
	assert_string_equal(p->host, "localhost");
	assert_string_equal(p->requests[0].wire, "GET /a HTTP/1.1\r\nUser-Agent: vdctl-load\r\n"
			    "Host: h\r\n\r\n");
	vd_load_profile_free(p);

	ov.target = "https://127.0.0.1";
	assert_null(parse_with("users: 1\nduration: 1s\nrequests: [{path: /}]\n", &ov, &err));
	assert_int_equal(err.code, VD_EXIT_INPUT);
	assert_string_equal(err.msg, "invalid --target 'https://127.0.0.1': https targets are "
			    "not supported by vdctl load");
	ov.target = "http://127.0.0.1:99999";
	assert_null(parse_with("users: 1\nduration: 1s\nrequests: [{path: /}]\n", &ov, &err));
	assert_int_equal(err.code, VD_EXIT_INPUT);
	assert_non_null(strstr(err.msg, "invalid --target 'http://127.0.0.1:99999': expected "));
}

/* --duration: a closed run's length; open phases scaled in proportion to
 * it, keeping their rates, 1 ms each at least, adding up to it exactly. */
static void
test_override_duration(void **state)
{
	struct vd_error err = VD_ERROR_INIT;
	struct vd_load_overrides ov = { .duration_ms = 2000 };
	struct vd_diags d = VD_DIAGS_INIT;
	struct vd_load_profile *p;

	(void)state;
	assert_int_equal(vd_load_profile_read(vt_path("examples/load/artillery.yml"), &ov, &p, &d,
					      &err), 0);
	assert_int_equal(vd_load_profile_duration_ms(p), 2000);
	assert_int_equal(p->phases[0].duration_ms, 500);
	assert_int_equal(p->phases[1].duration_ms, 1000);
	assert_int_equal(p->phases[2].duration_ms, 200);
	assert_int_equal(p->phases[3].duration_ms, 300);
	assert_true(p->phases[0].rate == 5 && p->phases[0].ramp_to == 20);
	assert_true(p->phases[3].rate == 20);
	vd_load_profile_free(p);

	p = parse_with("target: http://127.0.0.1:1\nusers: 2\nduration: 1m\n"
		       "requests: [{path: /}]\n", &ov, &err);
	assert_non_null(p);
	assert_int_equal(p->duration_ms, 2000);
	vd_load_profile_free(p);

	ov.duration_ms = 1000;
	p = parse_with("target: http://127.0.0.1:1\nphases: [{duration: 1s, arrival_rate: 1},"
		       " {duration: 1s, arrival_rate: 2}, {duration: 1s, arrival_rate: 3}]\n"
		       "requests: [{path: /}]\n", &ov, &err);
	assert_non_null(p);
	assert_int_equal(vd_load_profile_duration_ms(p), 1000);
	for (size_t i = 0; i < 3; i++)
		assert_in_range(p->phases[i].duration_ms, 333, 334);
	vd_load_profile_free(p);

	/* a long phase and two short ones, squeezed: each keeps 1 ms */
	ov.duration_ms = 3;
	p = parse_with("target: http://127.0.0.1:1\nphases: [{duration: 1h, arrival_rate: 1},"
		       " {duration: 1ms, arrival_rate: 2}, {duration: 1ms, arrival_rate: 3}]\n"
		       "requests: [{path: /}]\n", &ov, &err);
	assert_non_null(p);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(p->phases[i].duration_ms, 1);
	vd_load_profile_free(p);
	ov.duration_ms = 2;
	assert_null(parse_with("target: http://127.0.0.1:1\nphases: [{duration: 1s, "
			       "arrival_rate: 1}, {pause: 1s}, {duration: 1s, arrival_rate: 3}]\n"
			       "requests: [{path: /}]\n", &ov, &err));
	assert_int_equal(err.code, VD_EXIT_INPUT);
	assert_string_equal(err.msg, "invalid --duration '2ms': 't.yaml' has 3 phases, which "
			    "need 1ms each at least");
}

/* --rate: a one-phase open profile's rate (a ramp becomes constant);
 * refused for the closed model and for several phases. */
static void
test_override_rate(void **state)
{
	struct vd_error err = VD_ERROR_INIT;
	struct vd_load_overrides ov = { .rate = 12.5 };
	struct vd_load_profile *p;

	(void)state;
	p = parse_with("target: http://127.0.0.1:1\nphases: [{duration: 4s, arrival_rate: 1, "
		       "ramp_to: 50}]\nrequests: [{path: /}]\n", &ov, &err);
	assert_non_null(p);
	assert_true(p->phases[0].rate == 12.5 && p->phases[0].ramp_to == 12.5);
	assert_int_equal(p->phases[0].duration_ms, 4000);
	vd_load_profile_free(p);

	assert_null(parse_with("target: http://127.0.0.1:1\nusers: 5\nduration: 1s\n"
			       "requests: [{path: /}]\n", &ov, &err));
	assert_int_equal(err.code, VD_EXIT_INPUT);
	assert_string_equal(err.msg, "--rate is for the open model, and 't.yaml' is a "
			    "closed-model profile: its load comes from its 5 users and their "
			    "wait times");
	assert_null(parse_with("target: http://127.0.0.1:1\nphases: [{duration: 1s, "
			       "arrival_rate: 1}, {pause: 1s}]\nrequests: [{path: /}]\n", &ov, &err));
	assert_int_equal(err.code, VD_EXIT_INPUT);
	assert_non_null(strstr(err.msg, "--rate sets the rate of a profile with one phase, and "
			       "'t.yaml' has 2"));

	/* with both, the phases are scaled first */
	ov.duration_ms = 500;
	p = parse_with("target: http://127.0.0.1:1\nphases: [{duration: 4s, arrival_rate: 1}]\n"
		       "requests: [{path: /}]\n", &ov, &err);
	assert_non_null(p);
	assert_int_equal(p->phases[0].duration_ms, 500);
	assert_true(p->phases[0].rate == 12.5);
	vd_load_profile_free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_artillery_example),
		cmocka_unit_test(test_vdctl_closed),
		cmocka_unit_test(test_vdctl_open),
		cmocka_unit_test(test_artillery_unsupported_keys),
		cmocka_unit_test(test_vdctl_mistakes),
		cmocka_unit_test(test_shared_reader),
		cmocka_unit_test(test_unreadable),
		cmocka_unit_test(test_override_target),
		cmocka_unit_test(test_override_duration),
		cmocka_unit_test(test_override_rate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
