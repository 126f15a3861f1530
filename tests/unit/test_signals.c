/*
 * The balancer's per-second signals (orchestrator/signals.c): rates over
 * windows of any length, time-weighted levels, means and percentiles of
 * what completed, the edges (a window longer than the ring has run, a
 * ring left idle longer than it keeps).
 */
#include <math.h>
#include <stdio.h>

#include "vd/signals.h"
#include "vdtest.h"

#define S 1000000LL   /* a second in us */
#define T0 (1000 * S) /* any origin */

static void
test_rate(void **state)
{
	struct vd_signals *s = vd_signals_new(120000, T0);
	struct vd_signals_window w;

	(void)state;
	assert_non_null(s);
	assert_int_equal(vd_signals_span(s), 120000);
	/* 10 a second for 60 s, then 100 a second for 10 s */
	for (int i = 0; i < 600; i++)
		vd_signals_arrive(s, T0 + i * S / 10);
	for (int i = 0; i < 1000; i++)
		vd_signals_arrive(s, T0 + 60 * S + i * S / 100);
	vd_signals_read(s, T0 + 70 * S, 10000, &w);
	assert_true(fabs(w.seconds - 10) < 1e-9);
	assert_true(fabs(w.rate - 100) < 1e-9);
	vd_signals_read(s, T0 + 70 * S, 60000, &w);
	assert_true(fabs(w.rate - (500 + 1000) / 60.0) < 1e-9);
	/* a window that is not whole seconds: the oldest second prorated */
	vd_signals_read(s, T0 + 70 * S + S / 2, 10000, &w);
	assert_true(fabs(w.arrivals - 950) < 1e-6); /* 9.5 s of 100/s, the rest after */
	/* a window longer than the ring has run covers what it has */
	vd_signals_read(s, T0 + 70 * S, 120000, &w);
	assert_true(fabs(w.seconds - 70) < 1e-9);
	assert_true(fabs(w.rate - 1600 / 70.0) < 1e-9);
	vd_signals_free(s);
}

static void
test_levels(void **state)
{
	struct vd_signals *s = vd_signals_new(60000, T0);
	struct vd_signals_window w;

	(void)state;
	/* 4 in flight for 2.5 s, then 0; 3 queued for the last 1 s of 10 */
	vd_signals_level(s, T0, 4, 0);
	vd_signals_level(s, T0 + 2500000, 0, 0);
	vd_signals_level(s, T0 + 9 * S, 0, 3);
	vd_signals_read(s, T0 + 10 * S, 10000, &w);
	assert_true(fabs(w.inflight - 1.0) < 1e-9);
	assert_true(fabs(w.queue - 0.3) < 1e-9);
	/* the level goes on being counted until it changes */
	vd_signals_read(s, T0 + 20 * S, 5000, &w);
	assert_true(fabs(w.queue - 3) < 1e-9);
	assert_true(w.inflight == 0);
	vd_signals_free(s);
}

static void
test_times(void **state)
{
	struct vd_signals *s = vd_signals_new(10000, T0);
	struct vd_signals_window w;

	(void)state;
	/* 95 requests of 10 ms (no wait), 5 of 1 s having waited 400 ms */
	for (int i = 0; i < 95; i++)
		vd_signals_complete(s, T0 + S / 2, 0, 10000, 0);
	for (int i = 0; i < 5; i++)
		vd_signals_complete(s, T0 + S / 2, 400000, 1000000, 0);
	vd_signals_refuse(s, T0 + S / 2);
	vd_signals_read(s, T0 + S, 10000, &w);
	assert_true(fabs(w.completions - 100) < 1e-9);
	assert_true(fabs(w.refused - 1) < 1e-9);
	assert_true(fabs(w.throughput - 100) < 1e-9);
	assert_true(fabs(w.wait_ms - 20) < 1e-9);                             /* 5 x 400 / 100 */
	assert_true(fabs(w.service_ms - (95 * 10 + 5 * 600) / 100.0) < 1e-9); /* exact */
	/* percentiles within 6.25% */
	assert_true(fabs(w.p50_ms - 10) <= 10 * 0.0625);
	assert_true(fabs(w.p95_ms - 10) <= 10 * 0.0625);
	assert_true(fabs(w.p99_ms - 1000) <= 1000 * 0.0625);
	assert_true(fabs(w.service_p95_ms - 10) <= 10 * 0.0625);
	assert_true(w.wait_p95_ms < 0.01);
	/* an empty window: zeros, not a division by zero */
	vd_signals_read(s, T0 + 30 * S, 5000, &w);
	assert_true(w.completions == 0 && w.p95_ms == 0 && w.service_ms == 0 && w.rate == 0);
	vd_signals_free(s);
}

static void
test_every_value_in_its_bucket(void **state)
{
	(void)state;
	/* a single value anywhere from 1 us to 100 s reads back within 6.25% */
	for (uint64_t us = 1; us < 100000000ULL; us = us * 11 / 10 + 1) {
		struct vd_signals *s = vd_signals_new(1000, T0);
		struct vd_signals_window w;
		double ms = (double)us / 1000;

		vd_signals_complete(s, T0, 0, us, 0);
		vd_signals_read(s, T0 + S / 2, 1000, &w);
		if (us < 64) /* below 64 us: buckets of 8 us */
			assert_true(fabs(w.p95_ms - ms) <= 0.004 + 1e-9);
		else
			assert_true(fabs(w.p95_ms - ms) <= ms * 0.0625);
		vd_signals_free(s);
	}
}

static void
test_cold_wait(void **state)
{
	struct vd_signals *s = vd_signals_new(10000, T0);
	struct vd_signals_window w;

	(void)state;
	/* 900 ms waiting for a first replica, then 100 ms served */
	vd_signals_complete(s, T0, 900000, 1000000, 900000);
	vd_signals_read(s, T0 + S / 2, 10000, &w);
	assert_true(fabs(w.p95_ms - 100) <= 100 * 0.0625);
	assert_true(fabs(w.wait_ms - 900) < 1e-9); /* the wait is still a wait */
	assert_true(fabs(w.service_ms - 100) < 1e-9);
	vd_signals_free(s);
}

static void
test_idle_ring(void **state)
{
	struct vd_signals *s = vd_signals_new(5000, T0);
	struct vd_signals_window w;

	(void)state;
	for (int i = 0; i < 50; i++)
		vd_signals_arrive(s, T0 + i * S / 10);
	vd_signals_level(s, T0, 2, 0);
	/* an hour later: the old arrivals are gone, the level still holds */
	vd_signals_read(s, T0 + 3600 * S, 5000, &w);
	assert_true(w.arrivals == 0);
	assert_true(fabs(w.inflight - 2) < 1e-9);
	vd_signals_arrive(s, T0 + 3600 * S + 1);
	vd_signals_read(s, T0 + 3601 * S, 5000, &w);
	assert_true(fabs(w.arrivals - 1) < 1e-9);
	vd_signals_free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rate),      cmocka_unit_test(test_levels),
		cmocka_unit_test(test_times),     cmocka_unit_test(test_every_value_in_its_bucket),
		cmocka_unit_test(test_cold_wait), cmocka_unit_test(test_idle_ring),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
