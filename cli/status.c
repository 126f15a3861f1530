/*
 * vdctl status [SERVICE...]: what the controller sees: engines, services
 * with their balancer's numbers, replicas with health and restarts.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "vd/ctlclient.h"
#include "vd/units.h"

static const char usage[] =
	"usage: vdctl status [--json | --events] [SERVICE...]\n"
	"\n"
	"Ask the running controller (see vdctl-controller(8)) what it sees: whether\n"
	"each engine answers; for each service its replicas ready of desired and its\n"
	"balancer's numbers (client connections, requests in flight and queued,\n"
	"responses a second and p50/p95/p99 response time over the last 10 s,\n"
	"errors); for each replica its state, health, restarts and the reason of\n"
	"the last one, address, requests in flight and served. For an autoscaled\n"
	"service, the autoscaler's line: its bounds, the signals of its short and\n"
	"long windows and its last decision with its numbers.\n"
	"\n"
	"options:\n"
	"   --events     list the autoscaler's recent decisions (changes, and holds\n"
	"                that stopped one), oldest first\n"
	"   --json       print the controller's answer as it is (GET /v1/status)\n"
	"   -h, --help   show this help\n"
	"\n"
	"exit status: 0 shown, all well; 1 shown, and a service is held (its record\n"
	"cannot be used) or its balancer does not listen; 2 bad arguments or unknown\n"
	"service; 3 no controller answers\n";

static bool
wanted(const char *name, char *const *only, size_t n)
{
	if (!n)
		return true;
	for (size_t i = 0; i < n; i++)
		if (strcmp(only[i], name) == 0)
			return true;
	return false;
}

static const char *
str(const json_t *o, const char *key, const char *def)
{
	const json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : def;
}

static long long
num(const json_t *o, const char *key)
{
	return (long long)json_number_value(json_object_get(o, key));
}

static void
print_engines(const json_t *st, FILE *f)
{
	const char *name;
	json_t *e;
	bool first = true;

	fputs("engines:", f);
	json_object_foreach(json_object_get(st, "engines"), name, e) {
		fprintf(f, "%s %s %s", first ? "" : ",", name,
			json_is_true(json_object_get(e, "up")) ? "up" : "DOWN");
		if (!json_is_true(json_object_get(e, "up")))
			fprintf(f, " (%s)", str(e, "error", "?"));
		first = false;
	}
	fprintf(f, "%s\n", first ? " none in use" : "");
}

/* A desired state changed by scale or resize since its manifest was applied. */
static void
print_drift(const json_t *d, FILE *f)
{
	const json_t *v;
	char buf[32];

	fputs(" (its manifest says", f);
	if ((v = json_object_get(d, "replicas")))
		fprintf(f, " %lld replicas", (long long)json_integer_value(v));
	if ((v = json_object_get(d, "milli_cpus")))
		fprintf(f, " %s cpus", vd_units_format_milli_cpus(json_integer_value(v), buf,
								     sizeof(buf)));
	if ((v = json_object_get(d, "memory_bytes")))
		fprintf(f, " %s", vd_units_format_size(json_integer_value(v), buf, sizeof(buf)));
	fputs(": scaled or resized since; applying it sets that back)", f);
}

static void
print_window(const char *name, const json_t *w, FILE *f)
{
	fprintf(f, "%s %.0f s: %.1f req/s, service %.0f ms, wait %.0f ms, %.1f in flight, "
		"%.1f queued, p95 %.0f ms", name, json_number_value(json_object_get(w, "seconds")),
		json_number_value(json_object_get(w, "rate")),
		json_number_value(json_object_get(w, "service_ms")),
		json_number_value(json_object_get(w, "wait_ms")),
		json_number_value(json_object_get(w, "inflight")),
		json_number_value(json_object_get(w, "queue")),
		json_number_value(json_object_get(w, "p95_ms")));
}

/* Of the errors, those of overload, by kind: "(3 client gone, 2 refused
 * early)". */
static void
print_overload(const json_t *errs, FILE *f)
{
	static const char *const kinds[][2] = {
		{ "client_gone", "client gone" },
		{ "refused_early", "refused early" },
		{ "queue_timeout", "queue timeout" },
	};
	const char *sep = " (";

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		long long n = (long long)json_integer_value(json_object_get(errs, kinds[i][0]));

		if (n) {
			fprintf(f, "%s%lld %s", sep, n, kinds[i][1]);
			sep = ", ";
		}
	}
	if (*sep == ',')
		fputc(')', f);
}

/* The autoscaler's line: bounds, signals, the last decision. */
static void
print_autoscale(const json_t *a, FILE *f)
{
	if (!json_is_object(a))
		return;
	fprintf(f, "\nautoscale %lld-%lld: %lld desired, %lld up and %lld down so far%s",
		num(a, "min"), num(a, "max"), num(a, "desired"), num(a, "ups"), num(a, "downs"),
		json_is_true(json_object_get(a, "pending")) ? ", a change under way" : "");
	if (json_is_number(json_object_get(a, "start_s")))
		fprintf(f, ", last scale-up ready in %.1f s",
			json_number_value(json_object_get(a, "start_s")));
	if (json_is_string(json_object_get(a, "why_idle")))
		fprintf(f, "; idle: %s", str(a, "why_idle", "?"));
	if (!json_is_string(json_object_get(a, "why")))
		return;
	fputs("\n  ", f);
	print_window("short", json_object_get(a, "up"), f);
	fputs("\n  ", f);
	print_window("long", json_object_get(a, "down"), f);
	fprintf(f, "\n  last decision (%s): %s", str(a, "reason", "?"), str(a, "why", "?"));
}

static int
print_events(const json_t *st, char *const *only, size_t n, FILE *f)
{
	const json_t *e;
	size_t i, shown = 0;

	json_array_foreach(json_object_get(st, "autoscale_events"), i, e) {
		char when[32];
		time_t t = (time_t)(json_integer_value(json_object_get(e, "at_ms")) / 1000);
		struct tm tm;

		if (!wanted(str(e, "service", ""), only, n))
			continue;
		strftime(when, sizeof(when), "%H:%M:%S", localtime_r(&t, &tm));
		fprintf(f, "%s %-20s %-9s %s\n", when, str(e, "service", "?"),
			str(e, "reason", "?"), str(e, "why", "?"));
		shown++;
	}
	if (!shown)
		fputs("no autoscaler decisions yet\n", f);
	return 0;
}

/* Is something wrong with S that its owner must see: a record that cannot be
 * used, a declared balancer that does not listen? */
static bool
in_trouble(const json_t *s)
{
	const json_t *b = json_object_get(s, "balancer");

	return json_is_string(json_object_get(s, "held")) ||
	       (json_is_object(b) && !json_is_true(json_object_get(b, "up")));
}

static void
print_service(const json_t *s, FILE *f)
{
	const json_t *b = json_object_get(s, "balancer"), *reps = json_object_get(s, "replicas");
	const json_t *r;
	size_t i;

	if (json_is_string(json_object_get(s, "held")) && !json_is_array(reps)) {
		fprintf(f, "\n%s: HELD: %s\n", str(s, "name", "?"), str(s, "held", "?"));
		return;
	}
	fprintf(f, "\n%s (%s): %lld/%lld ready", str(s, "name", "?"), str(s, "backend", "?"),
		num(s, "ready"), num(s, "desired"));
	if (json_is_string(json_object_get(s, "held")))
		fprintf(f, ", HELD as it was: %s", str(s, "held", "?"));
	if (json_is_object(json_object_get(s, "manifest_declares")))
		print_drift(json_object_get(s, "manifest_declares"), f);
	if (json_is_object(b)) {
		const char *k;
		json_t *v;
		long long errors = 0;

		json_object_foreach(json_object_get(b, "errors"), k, v)
			errors += (long long)json_integer_value(v);
		if (!json_is_true(json_object_get(b, "up")))
			fprintf(f, ", balancer %s NOT LISTENING (%s)", str(b, "listen", "?"),
				str(b, "error", "waiting for replicas"));
		else
			fprintf(f, ", balancer %s: %lld conns, %lld inflight, %lld queued, "
				"%.1f req/s, p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, %lld errors",
				str(b, "listen", "?"), num(b, "connections"), num(b, "inflight"),
				num(b, "queued"), json_number_value(json_object_get(b, "rps")),
				json_number_value(json_object_get(b, "p50_ms")),
				json_number_value(json_object_get(b, "p95_ms")),
				json_number_value(json_object_get(b, "p99_ms")), errors);
		print_overload(json_object_get(b, "errors"), f);
		if (json_is_integer(json_object_get(b, "client_patience_ms")))
			fprintf(f, "; clients leave after %.1f s: requests wait less",
				(double)num(b, "client_patience_ms") / 1000);
	}
	print_autoscale(json_object_get(s, "autoscale"), f);
	fprintf(f, "\n%-20s %-8s %-10s %-9s %-22s %-8s %-8s %s\n", "REPLICA", "STATE", "HEALTH",
		"RESTARTS", "ADDRESS", "INFLIGHT", "REQUESTS", "LAST RESTART");
	json_array_foreach(reps, i, r) {
		char restarts[32];
		double backoff = json_number_value(json_object_get(r, "backoff_s"));

		snprintf(restarts, sizeof(restarts), "%lld", num(r, "restarts"));
		fprintf(f, "%-20s %-8s %-10s %-9s %-22s %-8lld %-8lld %s", str(r, "name", "?"),
			str(r, "state", "?"), str(r, "health", "?"), restarts,
			*str(r, "address", "") ? str(r, "address", "") : "-", num(r, "inflight"),
			num(r, "requests"), str(r, "last_reason", "-"));
		if (backoff > 0)
			fprintf(f, " (next try in %.0f s)", backoff);
		fputc('\n', f);
	}
}

/* -1 with err when a service of ONLY is not the controller's. */
static int
known(const json_t *st, char *const *only, size_t n, struct vd_error *err)
{
	const json_t *s;
	size_t i;

	for (size_t k = 0; k < n; k++) {
		bool found = false;

		json_array_foreach(json_object_get(st, "services"), i, s)
			found |= strcmp(str(s, "name", ""), only[k]) == 0;
		if (!found)
			return vd_error_set(err, VD_EXIT_INPUT, "no service '%s' in the controller",
					    only[k]);
	}
	return 0;
}

int
cli_status_print(const json_t *st, char *const *only, size_t n, FILE *f, struct vd_error *err)
{
	const json_t *svcs = json_object_get(st, "services"), *s;
	size_t i;

	if (known(st, only, n, err) < 0)
		return -1;
	fprintf(f, "controller pid %lld, up %.0f s, state %s; ", num(st, "pid"),
		json_number_value(json_object_get(st, "uptime_s")), str(st, "state_dir", "?"));
	print_engines(st, f);
	if (!json_array_size(svcs))
		fputs("no services applied yet\n", f);
	json_array_foreach(svcs, i, s)
		if (wanted(str(s, "name", ""), only, n))
			print_service(s, f);
	return cli_status_trouble(st, only, n);
}

int
cli_status_trouble(const json_t *st, char *const *only, size_t n)
{
	const json_t *s;
	size_t i;
	int trouble = 0;

	json_array_foreach(json_object_get(st, "services"), i, s)
		trouble += wanted(str(s, "name", ""), only, n) && in_trouble(s);
	return trouble;
}

int
cmd_status(int argc, char **argv, struct vd_error *err)
{
	static const struct option options[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "events", no_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool as_json = false, events = false;
	json_t *st = NULL;
	int c, ret;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (c) {
		case 'j':
			as_json = true;
			break;
		case 'e':
			events = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			return cli_unknown_option(err, "status", options, argv[optind - 1]);
		}
	}
	if (as_json && events)
		return cli_usage_error(err, "status", "--json and --events exclude each other "
				       "(the JSON has the events as 'autoscale_events')");
	if (vd_ctlclient_get(cli_state_dir(), "/v1/status", &st, err) < 0)
		return -1;
	if (events) {
		ret = known(st, argv + optind, (size_t)(argc - optind), err);
		if (ret == 0)
			ret = print_events(st, argv + optind, (size_t)(argc - optind), stdout);
	} else if (as_json) {
		json_dumpf(st, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		putchar('\n');
		ret = cli_status_trouble(st, argv + optind, (size_t)(argc - optind));
	} else {
		ret = cli_status_print(st, argv + optind, (size_t)(argc - optind), stdout, err);
	}
	json_decref(st);
	/* 1 while a service needs its owner: held, or its balancer not listening */
	return ret > 0 ? 1 : ret;
}
