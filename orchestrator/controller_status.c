/*
 * What the controller answers: status on its control socket (GET
 * /v1/status), the Prometheus text on its metrics listener, and the apply
 * and delete jobs that arrive on the control socket, queued for the engine
 * thread with their progress streamed back to the client as NDJSON.
 * Everything here runs on the loop thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "controller_int.h"
#include "vd/clock.h"
#include "vd/log.h"

/* --------------------------------------------------------------- status */

static double
ms_of(uint64_t us)
{
	return (double)us / 1000.0;
}

static json_t *
balancer_json(struct csvc *s, struct vd_lb_stats *st, bool have)
{
	static const char *const classes[] = { NULL, "1xx", "2xx", "3xx", "4xx", "5xx" };
	json_t *j, *resp, *errs;
	char listen[300];

	if (!s->svc->balancer.enabled)
		return json_null();
	snprintf(listen, sizeof(listen),
		 strchr(s->svc->balancer.listen_host, ':') ? "[%s]:%d" : "%s:%d",
		 s->svc->balancer.listen_host, s->svc->balancer.listen_port);
	j = json_pack("{s:s, s:b, s:o}", "listen", listen, "up", s->lb != NULL, "error",
		      s->lb_error[0] ? json_string(s->lb_error) : json_null());
	if (!have)
		return j;
	resp = json_object();
	errs = json_object();
	for (int k = 1; k < 6; k++)
		if (st->responses[k])
			json_object_set_new(resp, classes[k], json_integer((json_int_t)st->responses[k]));
	for (int k = 0; k < VD_LB_ERR_KINDS; k++)
		if (st->errors[k])
			json_object_set_new(errs, vd_lb_error_name(k),
					    json_integer((json_int_t)st->errors[k]));
	json_object_update(j, json_pack("{s:I, s:i, s:i, s:I, s:f, s:f, s:f, s:f, s:o, s:o}",
					"connections", (json_int_t)st->connections, "inflight",
					st->inflight, "queued", st->queued, "requests",
					(json_int_t)st->requests, "rps", st->rps10, "p50_ms",
					ms_of(st->total10.p50), "p95_ms", ms_of(st->total10.p95),
					"p99_ms", ms_of(st->total10.p99), "responses", resp,
					"errors", errs));
	json_object_set_new(j, "client_patience_ms",
			    st->patience_ms ? json_integer(st->patience_ms) : json_null());
	return j;
}

/* Why replica SERVICE/INDEX could not be made, or NULL. */
static const char *
failure_of(const struct controller *c, const char *service, int index)
{
	char key[16];

	snprintf(key, sizeof(key), "%d", index);
	return json_string_value(json_object_get(json_object_get(c->failures, service), key));
}

/* A row for each index the service should have and has not: "failed" with
 * why, or "missing" (being made). */
static void
missing_rows(const struct controller *c, const struct csvc *s, json_t *reps)
{
	char name[96];

	for (int k = 0; !s->held && k < s->svc->replicas; k++) {
		bool there = false;
		const char *why = failure_of(c, s->name, k);

		for (size_t i = 0; i < s->nreps && !there; i++)
			there = s->reps[i]->index == k;
		if (there)
			continue;
		vd_replica_name(name, sizeof(name), s->name, k);
		json_array_append_new(reps, json_pack("{s:i, s:s, s:s, s:s, s:s, s:b, s:i, s:i, "
						      "s:i, s:s?}", "index", k, "name", name, "id",
						      "", "state", why ? "failed" : "missing",
						      "health", "-", "in_balancer", 0, "inflight", 0,
						      "requests", 0, "restarts", 0, "last_reason",
						      why));
	}
}

/* What a command (scale, resize) changed of S since its manifest was
 * applied: the manifest's values that differ, or null. */
static json_t *
drift_json(const struct controller *c, const struct csvc *s)
{
	const json_t *d = json_object_get(c->declared, s->name);
	json_t *out = json_object();

	if (!d || !out) {
		json_decref(out);
		return json_null();
	}
	if (json_integer_value(json_object_get(d, "replicas")) != s->svc->replicas &&
	    !s->svc->autoscale.enabled) /* the autoscaler's to change */
		json_object_set(out, "replicas", json_object_get(d, "replicas"));
	if (json_integer_value(json_object_get(d, "milli_cpus")) != s->svc->milli_cpus)
		json_object_set(out, "milli_cpus", json_object_get(d, "milli_cpus"));
	if (json_integer_value(json_object_get(d, "memory_bytes")) != s->svc->memory_bytes)
		json_object_set(out, "memory_bytes", json_object_get(d, "memory_bytes"));
	if (json_object_size(out))
		return out;
	json_decref(out);
	return json_null();
}

/* Why SERVICE is held (its record cannot be used), or null. */
static json_t *
held_json(const struct controller *c, const char *service)
{
	for (size_t i = 0; i < c->nheld; i++)
		if (strcmp(c->held[i].service, service) == 0)
			return json_string(c->held[i].why);
	return json_null();
}

static json_t *
status_json(struct controller *c)
{
	json_t *root = json_object(), *engines = json_object(), *svcs = json_array();

	for (size_t i = 0; i < c->nengines; i++) {
		const struct engine_status *e = &c->engines[i];

		if (e->used)
			json_object_set_new(engines, e->name,
					    json_pack("{s:b, s:o}", "up", e->up, "error",
						      e->up ? json_null() : json_string(e->error)));
	}
	for (size_t i = 0; i < c->nsvcs; i++) {
		struct csvc *s = c->svcs[i];
		struct vd_lb_stats st = { 0 };
		struct vd_error err = VD_ERROR_INIT;
		bool have = s->lb && vd_lb_stats(s->lb, &st, &err) == 0;
		json_t *reps = json_array();
		int ready = 0;

		for (size_t k = 0; k < s->nreps; k++) {
			struct crep *r = s->reps[k];
			struct vd_lb_replica_stats *rs = NULL;
			struct vd_restart_mark *mk;
			int64_t now = vd_clock_ms();
			char addr[100];
			json_t *j;

			for (size_t x = 0; have && x < st.nreplicas; x++)
				if (strcmp(st.replicas[x].name, r->key) == 0)
					rs = &st.replicas[x];
			snprintf(addr, sizeof(addr), strchr(r->host, ':') ? "[%s]:%d" : "%s:%d",
				 r->host, r->port);
			ready += r->health == H_HEALTHY;
			j = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:b, s:i, s:I}", "index",
				      r->index, "name", r->name, "id", r->id, "state",
				      vd_replica_state_name(r->state), "health",
				      ctrl_health_name(r->health), "address", r->port ? addr : "",
				      "in_balancer", r->in_lb, "inflight", rs ? rs->inflight : 0,
				      "requests", (json_int_t)(rs ? rs->requests : 0));
			pthread_mutex_lock(&c->lock);
			mk = vd_restarts_find(&c->book, s->name, r->index, false);
			json_object_set_new(j, "restarts", json_integer(mk ? mk->restarts : 0));
			json_object_set_new(j, "last_reason", mk && mk->reason[0]
								      ? json_string(mk->reason)
								      : json_null());
			json_object_set_new(j, "backoff_s",
					    json_real(mk && mk->hold_until > now
							      ? (double)(mk->hold_until - now) / 1000
							      : 0));
			pthread_mutex_unlock(&c->lock);
			json_array_append_new(reps, j);
		}
		missing_rows(c, s, reps);
		json_array_append_new(svcs,
				      json_pack("{s:s, s:s, s:s, s:i, s:i, s:o, s:o, s:o}", "name",
						s->name, "backend",
						vd_manifest_backend_name(s->svc->backend), "engine",
						s->engine, "desired", s->svc->replicas, "ready",
						ready, "balancer", balancer_json(s, &st, have),
						"replicas", reps, "held", held_json(c, s->name)));
		json_object_set_new(json_array_get(svcs, json_array_size(svcs) - 1),
				    "manifest_declares", drift_json(c, s));
		json_object_set_new(json_array_get(svcs, json_array_size(svcs) - 1),
				    "autoscale", ctrl_autoscale_json(s));
		free(st.replicas);
	}
	/* held and never taken on: a name and why */
	for (size_t i = 0; i < c->nheld; i++) {
		bool known = false;

		for (size_t k = 0; k < c->nsvcs && !known; k++)
			known = strcmp(c->svcs[k]->name, c->held[i].service) == 0;
		if (!known)
			json_array_append_new(svcs, json_pack("{s:s, s:s}", "name",
							      c->held[i].service, "held",
							      c->held[i].why));
	}
	json_object_set_new(root, "pid", json_integer(getpid()));
	json_object_set_new(root, "state_dir", json_string(c->dir));
	json_object_set_new(root, "uptime_s",
			    json_real((double)(vd_ev_now_ms(c->ev) - c->t0) / 1000));
	json_object_set_new(root, "engines", engines);
	json_object_set_new(root, "services", svcs);
	json_object_set_new(root, "autoscale_events", ctrl_autoscale_events(c));
	return root;
}

/* A family's header: its HELP and TYPE lines, which come before its samples. */
static void
family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The balancers' numbers, once, for the families that read them. */
struct lbnums {
	bool have;
	struct vd_lb_stats st;
};

/* Prometheus text exposition format 0.0.4: each family's HELP and TYPE, then
 * its samples. */
static char *
metrics_text(struct controller *c, size_t *len)
{
	struct lbnums *nums = calloc(c->nsvcs + 1, sizeof(*nums));
	char *text = NULL;
	FILE *f = nums ? open_memstream(&text, len) : NULL;

	if (!f) {
		free(nums);
		return NULL;
	}
	for (size_t i = 0; i < c->nsvcs; i++) {
		struct vd_error err = VD_ERROR_INIT;

		nums[i].have = c->svcs[i]->lb && vd_lb_stats(c->svcs[i]->lb, &nums[i].st, &err) == 0;
	}
	family(f, "vdctl_engine_up", "gauge", "Whether the engine answers.");
	for (size_t i = 0; i < c->nengines; i++)
		if (c->engines[i].used)
			fprintf(f, "vdctl_engine_up{engine=\"%s\"} %d\n", c->engines[i].name,
				c->engines[i].up);
	family(f, "vdctl_replicas_desired", "gauge", "Replicas the service should have.");
	for (size_t i = 0; i < c->nsvcs; i++)
		fprintf(f, "vdctl_replicas_desired{service=\"%s\"} %d\n", c->svcs[i]->name,
			c->svcs[i]->svc->replicas);
	family(f, "vdctl_replica_healthy", "gauge", "Whether a replica passes its health check.");
	for (size_t i = 0; i < c->nsvcs; i++)
		for (size_t k = 0; k < c->svcs[i]->nreps; k++)
			fprintf(f, "vdctl_replica_healthy{service=\"%s\",replica=\"%s\"} %d\n",
				c->svcs[i]->name, c->svcs[i]->reps[k]->name,
				c->svcs[i]->reps[k]->health == H_HEALTHY);
	family(f, "vdctl_replica_restarts_total", "counter", "Replacements of a replica index.");
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->nsvcs; i++) {
		for (size_t k = 0; k < c->svcs[i]->nreps; k++) {
			struct crep *r = c->svcs[i]->reps[k];
			struct vd_restart_mark *mk = vd_restarts_find(&c->book, c->svcs[i]->name,
								      r->index, false);

			fprintf(f, "vdctl_replica_restarts_total{service=\"%s\",replica=\"%s\"} "
				"%d\n", c->svcs[i]->name, r->name, mk ? mk->restarts : 0);
		}
	}
	pthread_mutex_unlock(&c->lock);
	family(f, "vdctl_requests_total", "counter", "Request heads the balancer received.");
	for (size_t i = 0; i < c->nsvcs; i++)
		if (nums[i].have)
			fprintf(f, "vdctl_requests_total{service=\"%s\"} %llu\n", c->svcs[i]->name,
				(unsigned long long)nums[i].st.requests);
	family(f, "vdctl_responses_total", "counter", "Responses by status class.");
	for (size_t i = 0; i < c->nsvcs; i++)
		for (int k = 1; nums[i].have && k < 6; k++)
			fprintf(f, "vdctl_responses_total{service=\"%s\",code=\"%dxx\"} %llu\n",
				c->svcs[i]->name, k, (unsigned long long)nums[i].st.responses[k]);
	family(f, "vdctl_balancer_errors_total", "counter",
	       "Requests the balancer answered itself or lost, by kind (client_gone, "
	       "refused_early, queue_timeout, ...).");
	for (size_t i = 0; i < c->nsvcs; i++)
		for (int k = 0; nums[i].have && k < VD_LB_ERR_KINDS; k++)
			fprintf(f, "vdctl_balancer_errors_total{service=\"%s\",kind=\"%s\"} %llu\n",
				c->svcs[i]->name, vd_lb_error_name(k),
				(unsigned long long)nums[i].st.errors[k]);
	family(f, "vdctl_inflight", "gauge", "Requests on replicas now.");
	for (size_t i = 0; i < c->nsvcs; i++)
		if (nums[i].have)
			fprintf(f, "vdctl_inflight{service=\"%s\"} %d\n", c->svcs[i]->name,
				nums[i].st.inflight);
	family(f, "vdctl_queued", "gauge", "Requests waiting in the balancer's queue now.");
	for (size_t i = 0; i < c->nsvcs; i++)
		if (nums[i].have)
			fprintf(f, "vdctl_queued{service=\"%s\"} %d\n", c->svcs[i]->name,
				nums[i].st.queued);
	family(f, "vdctl_response_seconds", "summary",
	       "Response time, head received to response relayed: quantiles over the last "
	       "10 s; sum and count since the start.");
	for (size_t i = 0; i < c->nsvcs; i++) {
		const struct vd_lb_stats *st = &nums[i].st;
		const char *n = c->svcs[i]->name;

		if (!nums[i].have)
			continue;
		fprintf(f, "vdctl_response_seconds{service=\"%s\",quantile=\"0.5\"} %.6f\n"
			   "vdctl_response_seconds{service=\"%s\",quantile=\"0.95\"} %.6f\n"
			   "vdctl_response_seconds{service=\"%s\",quantile=\"0.99\"} %.6f\n"
			   "vdctl_response_seconds_sum{service=\"%s\"} %.6f\n"
			   "vdctl_response_seconds_count{service=\"%s\"} %llu\n",
			n, (double)st->total10.p50 / 1e6, n, (double)st->total10.p95 / 1e6, n,
			(double)st->total10.p99 / 1e6, n, (double)st->relayed_us / 1e6, n,
			(unsigned long long)st->relayed);
	}
	ctrl_autoscale_metrics(c, f);
	for (size_t i = 0; i < c->nsvcs; i++)
		if (nums[i].have)
			free(nums[i].st.replicas);
	free(nums);
	fclose(f);
	return text;
}

/* ------------------------------------------------------ control socket */

static void
stream_gone(void *arg)
{
	struct stream *s = arg;

	s->req = NULL;
}

/* One NDJSON line of J (taken) to the client. */
static void
send_line(struct vd_ctl_req *req, json_t *j)
{
	char *line = j ? json_dumps(j, JSON_COMPACT) : NULL;

	if (line) {
		vd_ctl_stream_write(req, line, strlen(line));
		vd_ctl_stream_write(req, "\n", 1);
	}
	free(line);
	json_decref(j);
}

void
ctrl_stream_out(struct stream *s, const char *text)
{
	if (s->req && text)
		send_line(s->req, json_pack("{s:s}", "out", text));
	else if (s->autoscale[0] && text) /* the autoscaler's job: to the log */
		vd_info("%s: autoscale: %.*s", s->autoscale, (int)strcspn(text, "\n"), text);
}

void
ctrl_stream_finish(struct stream *s, int code, const char *error)
{
	json_t *j;

	if (s->req) {
		j = json_pack("{s:i}", "exit", code);
		if (j && code && error)
			json_object_set_new(j, "error", json_string(error));
		send_line(s->req, j);
		vd_ctl_stream_end(s->req);
	}
	free(s);
}

static void
reply_error(struct vd_ctl_req *req, int status, const char *msg)
{
	json_t *j = json_pack("{s:s}", "error", msg);

	vd_ctl_reply_json(req, status, j);
	json_decref(j);
}

static void
queue_job(struct controller *c, struct vd_ctl_req *req, enum job_kind kind, json_t *body)
{
	struct job *j = calloc(1, sizeof(*j));
	struct stream *s = calloc(1, sizeof(*s));

	if (!j || !s) {
		free(j);
		free(s);
		json_decref(body);
		reply_error(req, 500, "out of memory");
		return;
	}
	s->c = c;
	s->req = req;
	j->kind = kind;
	j->body = body;
	j->stream = s;
	vd_ctl_stream_begin(req, "application/x-ndjson", stream_gone, s);
	pthread_mutex_lock(&c->lock);
	*c->jobs_tail = j;
	c->jobs_tail = &j->next;
	pthread_mutex_unlock(&c->lock);
	ctrl_wake(c->wake_fd);
}

void
ctrl_on_control(void *arg, struct vd_ctl_req *req)
{
	struct controller *c = arg;
	const char *method = vd_ctl_method(req), *path = vd_ctl_path(req);
	bool apply = strcmp(path, "/v1/apply") == 0, del = strcmp(path, "/v1/delete") == 0;

	if (strcmp(path, "/v1/status") == 0 && strcmp(method, "GET") == 0) {
		json_t *j = status_json(c);

		vd_ctl_reply_json(req, 200, j);
		json_decref(j);
	} else if ((apply || del) && strcmp(method, "POST") == 0) {
		size_t len;
		const char *text = vd_ctl_body(req, &len);
		json_error_t jerr;
		json_t *body = json_loadb(text, len, 0, &jerr);

		if (!json_is_object(body) || !json_is_array(json_object_get(body, "services"))) {
			json_decref(body);
			reply_error(req, 400, "the body is not an object with a 'services' array");
			return;
		}
		if (c->stopping_loop) {
			json_decref(body);
			reply_error(req, 503, "the controller is stopping");
			return;
		}
		queue_job(c, req, apply ? JOB_APPLY : JOB_DELETE, body);
	} else {
		reply_error(req, 404, "no such resource");
	}
}

void
ctrl_on_metrics(void *arg, struct vd_ctl_req *req)
{
	struct controller *c = arg;
	size_t len = 0;
	char *text;

	if (strcmp(vd_ctl_path(req), "/metrics") != 0) {
		vd_ctl_reply(req, 404, "text/plain", "not found\n", 10);
		return;
	}
	text = metrics_text(c, &len);
	vd_ctl_reply(req, 200, "text/plain; version=0.0.4", text ? text : "", text ? len : 0);
	free(text);
}

