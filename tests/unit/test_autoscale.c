/*
 * The autoscaler's policy (orchestrator/autoscale.c): single decisions with
 * their numbers and words, then whole runs on synthetic series through a
 * small world kept here: a second at a time, the windows are means over
 * the last up/down seconds, requests beyond what the ready replicas serve
 * queue up, and a new replica is ready START_S seconds after it is asked
 * for. Everything is deterministic: no clock, no randomness but a fixed
 * LCG.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vdtest.h"
#include "vd/autoscale.h"

static struct vd_autoscale_policy
policy(int min, int max)
{
	struct vd_autoscale_policy p;

	vd_autoscale_policy_defaults(&p);
	p.min = min;
	p.max = max;
	p.per_replica = 2;
	return p;
}

/* A window with rate req/s of service_s each, and one p95. */
static struct vd_autoscale_window
win(double rate, double service_s, int64_t p95_ms)
{
	return (struct vd_autoscale_window){ rate, service_s, 0, p95_ms,
					     (uint64_t)(rate * 10 + 0.5) };
}

static struct vd_autoscale_decision
decide(const struct vd_autoscale_policy *p, int ready, int starting,
       struct vd_autoscale_window up, struct vd_autoscale_window down)
{
	struct vd_autoscale_input in = { .now_ms = 1000000, .ready = ready, .starting = starting,
					 .up = up, .down = down, .room = -1 };
	struct vd_autoscale_decision d;

	memset(&d, 0x5a, sizeof(d));
	vd_autoscale_decide(p, &in, &d);
	return d;
}

/* ------------------------------------------------------ single decisions */

static void
test_load(void **state)
{
	struct vd_autoscale_policy p = policy(1, 12);
	struct vd_autoscale_decision d;

	(void)state;
	/* 46 req/s x 0.21 s = 9.66 in service; 2 a replica at 0.7: 6.9 */
	d = decide(&p, 3, 0, win(46, 0.21, 100), win(46, 0.21, 100));
	assert_int_equal(d.desired, 7);
	assert_int_equal(d.reason, VD_AS_UP_LOAD);
	assert_string_equal(d.why,
			    "3 -> 7: 46.0 req/s x 0.210 s = 9.7 in service, target 0.7 x 2 per replica");
	assert_string_equal(vd_autoscale_reason_name(d.reason), "load");
	/* the same work on 7: nothing to do */
	d = decide(&p, 7, 0, win(46, 0.21, 100), win(46, 0.21, 100));
	assert_int_equal(d.desired, 7);
	assert_int_equal(d.reason, VD_AS_STEADY);
	assert_string_equal(d.why,
			    "7: 46.0 req/s x 0.210 s = 9.7 in service, target 0.7 x 2 per replica");
}

/* A replica's concurrency unknown: one request at a time. */
static void
test_unknown_concurrency(void **state)
{
	struct vd_autoscale_policy p = policy(1, 100);
	struct vd_autoscale_decision d;

	(void)state;
	p.per_replica = 0;
	d = decide(&p, 1, 0, win(14, 0.1, 0), win(14, 0.1, 0));
	assert_int_equal(d.desired, 2); /* 1.4 / 0.7 = 2.0, not 3 */
	assert_non_null(strstr(d.why, "x 1 per replica"));
}

static void
test_latency_guard(void **state)
{
	struct vd_autoscale_policy p = policy(1, 12);
	struct vd_autoscale_decision d;

	(void)state;
	p.target_p95_ms = 300;
	d = decide(&p, 2, 0, win(1, 0.1, 600), win(1, 0.1, 600));
	assert_int_equal(d.desired, 4);
	assert_int_equal(d.reason, VD_AS_UP_LATENCY);
	assert_string_equal(d.why, "2 -> 4: p95 600 ms over target 300 ms");
	/* under target: the load decides */
	d = decide(&p, 2, 0, win(1, 0.1, 290), win(1, 0.1, 290));
	assert_int_equal(d.reason, VD_AS_DOWN);
}

static void
test_queue_guard(void **state)
{
	struct vd_autoscale_policy p = policy(1, 12);
	struct vd_autoscale_window w = win(1, 0.1, 50);
	struct vd_autoscale_decision d;

	(void)state;
	p.target_queue = 2;
	w.queue = 10; /* 5 a replica on 2 */
	d = decide(&p, 2, 0, w, w);
	assert_int_equal(d.desired, 5);
	assert_int_equal(d.reason, VD_AS_UP_QUEUE);
	assert_string_equal(d.why, "2 -> 5: 5.0 queued per replica over target 2.0");
}

/* On the ratio: 3.2 replicas' worth of work on 3 is within 10%. */
static void
test_tolerance(void **state)
{
	struct vd_autoscale_policy p = policy(1, 12);
	struct vd_autoscale_decision d;

	(void)state;
	d = decide(&p, 3, 0, win(22.4, 0.2, 0), win(22.4, 0.2, 0)); /* 4.48 / 1.4 = 3.2 */
	assert_int_equal(d.desired, 3);
	assert_int_equal(d.reason, VD_AS_STEADY);
	d = decide(&p, 3, 0, win(23.8, 0.2, 0), win(23.8, 0.2, 0)); /* 3.4 */
	assert_int_equal(d.desired, 4);
	d = decide(&p, 4, 0, win(18.9, 0.2, 0), win(18.9, 0.2, 0)); /* 2.7 on 4 */
	assert_int_equal(d.desired, 3);
	assert_int_equal(d.reason, VD_AS_DOWN);
	d = decide(&p, 3, 0, win(19.6, 0.2, 0), win(19.6, 0.2, 0)); /* 2.8 on 3 */
	assert_int_equal(d.desired, 3);
}

/* Replicas still starting are capacity coming, and block a scale-down. */
static void
test_starting(void **state)
{
	struct vd_autoscale_policy p = policy(1, 12);
	struct vd_autoscale_decision d;

	(void)state;
	d = decide(&p, 1, 6, win(46, 0.21, 0), win(46, 0.21, 0)); /* wants 7 */
	assert_int_equal(d.desired, 7);
	assert_int_equal(d.reason, VD_AS_STEADY);
	d = decide(&p, 1, 6, win(1, 0.1, 0), win(1, 0.1, 0));
	assert_int_equal(d.desired, 7);
	assert_int_equal(d.reason, VD_AS_STARTING);
	assert_string_equal(strstr(d.why, ", 6 still starting"), ", 6 still starting");
}

/* Only the long window removes, and never below what the short one wants. */
static void
test_windows(void **state)
{
	struct vd_autoscale_policy p = policy(1, 12);
	struct vd_autoscale_decision d;

	(void)state;
	d = decide(&p, 7, 0, win(46, 0.21, 0), win(5, 0.21, 0));
	assert_int_equal(d.desired, 7);
	assert_int_equal(d.reason, VD_AS_STEADY);
	d = decide(&p, 7, 0, win(20, 0.21, 0), win(5, 0.21, 0)); /* 4.2 / 1.4 = 3 */
	assert_int_equal(d.desired, 3);
	assert_int_equal(d.reason, VD_AS_DOWN);
	/* the short window alone adds */
	d = decide(&p, 3, 0, win(46, 0.21, 0), win(5, 0.21, 0));
	assert_int_equal(d.desired, 7);
	/* a spike's slow requests in the long window do not hold its replicas:
	 * the guards are the short window's (40 x 0.1 / 1.4 = 2.9) */
	p.target_p95_ms = 300;
	d = decide(&p, 12, 0, win(10, 0.1, 150), win(40, 0.1, 2000));
	assert_int_equal(d.desired, 3);
	assert_int_equal(d.reason, VD_AS_DOWN);
	/* while the short window is slow, it keeps them */
	d = decide(&p, 12, 0, win(10, 0.1, 400), win(40, 0.1, 2000));
	assert_int_equal(d.desired, 12);
}

/* The windows read from balancer signals: the last second counts only
 * beyond the noise of the short window's mean. */
static void
test_windows_from_signals(void **state)
{
	struct vd_signals_window up = { .seconds = 10, .arrivals = 100, .rate = 10 };
	struct vd_signals_window step = { .seconds = 1, .arrivals = 16, .rate = 16 };
	struct vd_signals_window down = { .seconds = 120, .arrivals = 1200, .rate = 10,
					  .completions = 1200, .service_ms = 100, .p95_ms = 0.4 };
	struct vd_autoscale_input in = { 0 };

	(void)state;
	vd_autoscale_windows(&up, &step, &down, &in);
	assert_true(in.up.rate == 10); /* 16 in a second of 10: noise (10 + 3 x 3.2 = 19.5) */
	assert_true(in.down.service_s == 0.1);
	assert_int_equal(in.down.p95_ms, 1); /* a response, however fast, is a p95 */
	assert_int_equal(in.up.p95_ms, 0);   /* none: no p95 */
	step.arrivals = step.rate = 150;
	vd_autoscale_windows(&up, &step, &down, &in);
	assert_true(in.up.rate == 150); /* a step */
	assert_int_equal(in.up.arrivals, 100);
}

static void
test_cooldowns(void **state)
{
	struct vd_autoscale_policy p = policy(1, 12);
	struct vd_autoscale_input in = { .now_ms = 100000, .ready = 7, .up = win(5, 0.21, 0),
					 .down = win(5, 0.21, 0), .last_up_ms = 90000, .room = -1 };
	struct vd_autoscale_decision d;

	(void)state;
	vd_autoscale_decide(&p, &in, &d);
	assert_int_equal(d.desired, 7);
	assert_int_equal(d.wanted, 1);
	assert_int_equal(d.reason, VD_AS_COOLDOWN);
	assert_non_null(strstr(d.why, "scale-down cooldown 20s left"));
	in.now_ms = 120000; /* 30 s after the scale-up */
	vd_autoscale_decide(&p, &in, &d);
	assert_int_equal(d.desired, 1);
	/* an up cooldown, when set, holds a scale-up back */
	p.up_cooldown_ms = 5000;
	in = (struct vd_autoscale_input){ .now_ms = 100000, .ready = 1, .up = win(46, 0.21, 0),
					  .down = win(46, 0.21, 0), .last_up_ms = 98000,
					  .room = -1 };
	vd_autoscale_decide(&p, &in, &d);
	assert_int_equal(d.desired, 1);
	assert_int_equal(d.wanted, 7);
	assert_non_null(strstr(d.why, "scale-up cooldown 3s left"));
}

static void
test_zero(void **state)
{
	struct vd_autoscale_policy p = policy(0, 4);
	struct vd_autoscale_window none = { 0 };
	struct vd_autoscale_input in = { .now_ms = 1000000, .ready = 1, .up = none, .down = none,
					 .room = -1 };
	struct vd_autoscale_decision d;

	(void)state;
	vd_autoscale_decide(&p, &in, &d);
	assert_int_equal(d.desired, 0);
	assert_int_equal(d.reason, VD_AS_TO_ZERO);
	assert_string_equal(d.why, "1 -> 0: no request over the down window");
	/* one request in the long window keeps one replica */
	in.down.arrivals = 1;
	in.down.rate = 0.01;
	in.down.service_s = 0.1;
	vd_autoscale_decide(&p, &in, &d);
	assert_int_equal(d.desired, 1);
	/* from zero: the first request brings one at once, whatever the cooldown */
	p.up_cooldown_ms = 60000;
	in = (struct vd_autoscale_input){ .now_ms = 1000000, .ready = 0, .last_up_ms = 999000,
					  .room = -1 };
	in.up.arrivals = 1;
	vd_autoscale_decide(&p, &in, &d);
	assert_int_equal(d.desired, 1);
	assert_int_equal(d.reason, VD_AS_UP_FROM_ZERO);
	assert_string_equal(d.why, "0 -> 1: 1 requests arrived with no replica");
	/* min 1 never goes to zero */
	p = policy(1, 4);
	in = (struct vd_autoscale_input){ .now_ms = 1000000, .ready = 1, .room = -1 };
	vd_autoscale_decide(&p, &in, &d);
	assert_int_equal(d.desired, 1);
	assert_int_equal(d.reason, VD_AS_BOUNDS);
	assert_string_equal(d.why, "1: no request over the down window; min 1");
}

static void
test_bounds_and_room(void **state)
{
	struct vd_autoscale_policy p = policy(2, 12);
	struct vd_autoscale_input in = { .now_ms = 1000000, .ready = 3, .up = win(150, 0.1, 0),
					 .down = win(150, 0.1, 0), .room = -1 };
	struct vd_autoscale_decision d;

	(void)state;
	vd_autoscale_decide(&p, &in, &d); /* 15 / 1.4 = 10.7 */
	assert_int_equal(d.desired, 11);
	in.up = in.down = win(300, 0.1, 0);
	vd_autoscale_decide(&p, &in, &d);
	assert_int_equal(d.desired, 12);
	assert_int_equal(d.wanted, 22);
	assert_int_equal(d.reason, VD_AS_BOUNDS);
	assert_non_null(strstr(d.why, "; max 12"));
	/* the node holds 5: say so */
	in.room = 5;
	vd_autoscale_decide(&p, &in, &d);
	assert_int_equal(d.desired, 5);
	assert_int_equal(d.reason, VD_AS_NODE_FULL);
	assert_non_null(strstr(d.why, "3 -> 5: wants 12"));
	assert_non_null(strstr(d.why, "the node holds 5"));
	/* a node already over its room is not scaled down for it */
	in.room = 2;
	vd_autoscale_decide(&p, &in, &d);
	assert_int_equal(d.desired, 3);
	assert_int_equal(d.reason, VD_AS_NODE_FULL);
	/* above max (max lowered) under a scale-down cooldown: down to max */
	in = (struct vd_autoscale_input){ .now_ms = 1000000, .ready = 5, .up = win(1, 0.1, 0),
					  .down = win(1, 0.1, 0), .last_up_ms = 995000,
					  .room = -1 };
	p.max = 3;
	vd_autoscale_decide(&p, &in, &d);
	assert_int_equal(d.desired, 3);
	assert_int_equal(d.reason, VD_AS_BOUNDS);
	assert_non_null(strstr(d.why, "5 -> 3: max 3 (wants 1"));
	assert_non_null(strstr(d.why, "scale-down cooldown 25s left"));
	p.max = 12;
	/* below min (min raised): up to min */
	in = (struct vd_autoscale_input){ .now_ms = 1000000, .ready = 1, .up = win(1, 0.1, 0),
					  .down = win(1, 0.1, 0), .room = -1 };
	vd_autoscale_decide(&p, &in, &d);
	assert_int_equal(d.desired, 2);
	assert_int_equal(d.reason, VD_AS_BOUNDS);
}

/* ---------------------------------------------------------- the world */

#define SECONDS 600
#define START_S 2

struct world {
	struct vd_autoscale_policy p;
	int up_s, down_s;
	double rate[SECONDS], service_s;
	double queue[SECONDS]; /* queued at the end of each second */
	int ready, ready_at[64], nstarting;
	int64_t last_up, last_down;
	int replicas[SECONDS]; /* ready + starting after each second's decision */
	int ups, downs;
};

static void
mean_window(const struct world *w, int t, int len, struct vd_autoscale_window *out)
{
	int from = t - len + 1 < 0 ? 0 : t - len + 1;
	double sum = 0, q = 0;

	for (int i = from; i <= t; i++) {
		sum += w->rate[i];
		q += w->queue[i];
	}
	*out = (struct vd_autoscale_window){ sum / (t - from + 1), w->service_s,
					     q / (t - from + 1), 0, (uint64_t)sum };
}

static void
run(struct world *w)
{
	for (int t = 0; t < SECONDS; t++) {
		struct vd_autoscale_input in = { .now_ms = (int64_t)(t + 1) * 1000, .room = -1 };
		struct vd_autoscale_decision d;
		double served = w->ready * w->p.per_replica / w->service_s;
		double prev = t ? w->queue[t - 1] : 0;
		int have;

		for (int i = 0; i < w->nstarting;) /* replicas whose start is over */
			if (w->ready_at[i] <= t) {
				w->ready++;
				w->ready_at[i] = w->ready_at[--w->nstarting];
			} else {
				i++;
			}
		w->queue[t] = prev + w->rate[t] - served > 0 ? prev + w->rate[t] - served : 0;
		in.ready = w->ready;
		in.starting = w->nstarting;
		in.last_up_ms = w->last_up;
		in.last_down_ms = w->last_down;
		mean_window(w, t, w->up_s, &in.up);
		mean_window(w, t, w->down_s, &in.down);
		vd_autoscale_decide(&w->p, &in, &d);
		have = w->ready + w->nstarting;
		assert_true(d.desired >= w->p.min && d.desired <= w->p.max);
		if (d.desired > have) {
			while (w->ready + w->nstarting < d.desired && w->nstarting < 64)
				w->ready_at[w->nstarting++] = t + START_S;
			w->last_up = in.now_ms;
			w->ups++;
		} else if (d.desired < have) {
			assert_int_equal(w->nstarting, 0); /* never while some start */
			w->ready = d.desired;
			w->last_down = in.now_ms;
			w->downs++;
		}
		w->replicas[t] = w->ready + w->nstarting;
	}
}

static void
world_init(struct world *w, double rate, double service_s)
{
	memset(w, 0, sizeof(*w));
	w->p = policy(1, 12);
	w->up_s = 10;
	w->down_s = 120;
	w->service_s = service_s;
	for (int t = 0; t < SECONDS; t++)
		w->rate[t] = rate;
}

/* Steady load, and the same load wavering by 5% about 3.0 replicas' worth:
 * no change at all once it has the replicas it needs. */
static void
test_series_flat(void **state)
{
	static struct world w;
	unsigned lcg = 12345;

	(void)state;
	world_init(&w, 20, 0.1); /* 2 in service: 1.43 -> 2 */
	w.ready = 2;
	run(&w);
	assert_int_equal(w.ups + w.downs, 0);
	assert_int_equal(w.replicas[SECONDS - 1], 2);

	world_init(&w, 21, 0.2); /* 4.2 in service: 3.0 replicas' worth */
	for (int t = 0; t < SECONDS; t++) {
		lcg = lcg * 1103515245u + 12345u;
		w.rate[t] = 21 * (0.95 + 0.1 * (double)(lcg >> 16 & 0x7fff) / 0x7fff);
	}
	w.ready = 3;
	run(&w);
	assert_int_equal(w.ups + w.downs, 0);
}

/* 10 -> 150 -> 10 req/s, 100 ms each (as the autoscale bench): the step is
 * met within seconds by a few scale-ups, not one a second (the queue guard
 * overshoots to the max, 12); the first scale-down comes a down cooldown
 * after the last scale-up, none goes below what the load needs, and the
 * count is one again at the end. */
static void
test_series_step(void **state)
{
	static struct world w;
	int first_enough = -1, peak = 0, last_up_t = -1, first_down_t = -1;

	(void)state;
	world_init(&w, 10, 0.1);
	for (int t = 60; t < 120; t++)
		w.rate[t] = 150;
	w.ready = 1;
	w.p.target_queue = 2;
	run(&w);
	for (int t = 60; t < SECONDS; t++) {
		if (first_enough < 0 && w.replicas[t] * 2 / 0.1 >= 150)
			first_enough = t;
		if (w.replicas[t] > peak)
			peak = w.replicas[t];
		if (w.replicas[t] > w.replicas[t - 1])
			last_up_t = t;
		if (first_down_t < 0 && w.replicas[t] < w.replicas[t - 1])
			first_down_t = t;
	}
	assert_true(first_enough >= 60 && first_enough <= 62);
	assert_true(peak >= 8 && peak <= 12);
	assert_true(w.ups <= 3);
	assert_true(first_down_t > last_up_t && first_down_t - last_up_t >= 30);
	assert_true(w.queue[75] == 0); /* the queue drained */
	for (int t = 60; t < 120; t++) /* never below the step's need once met */
		if (t > first_enough)
			assert_true(w.replicas[t] * 2 / 0.1 >= 150);
	assert_int_equal(w.replicas[SECONDS - 1], 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load),	     cmocka_unit_test(test_unknown_concurrency),
		cmocka_unit_test(test_latency_guard), cmocka_unit_test(test_queue_guard),
		cmocka_unit_test(test_tolerance),     cmocka_unit_test(test_starting),
		cmocka_unit_test(test_windows),
		cmocka_unit_test(test_windows_from_signals),	     cmocka_unit_test(test_cooldowns),
		cmocka_unit_test(test_zero),	     cmocka_unit_test(test_bounds_and_room),
		cmocka_unit_test(test_series_flat),  cmocka_unit_test(test_series_step),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
