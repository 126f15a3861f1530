/*
 * Histograms and windows: every value from 1 us to 100 s is reported within
 * 1%, percentiles of known inputs, merge, mean, values out of range, and
 * the sliding window checked slot by slot and against a plain list of
 * every value recorded. Ends with a speed figure (printed, not asserted).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vdtest.h"
#include "vd/hist.h"

#define SLOT VD_WINDOW_SLOT_MS

/* Fail unless got is within 1% of want. */
static void
assert_near(uint64_t got, uint64_t want, const char *what)
{
	uint64_t d = got > want ? got - want : want - got;

	if (d * 100 > want)
		fail_msg("%s: got %" PRIu64 ", want %" PRIu64 " within 1%%", what, got, want);
}

/* A small deterministic generator (xorshift64). */
static uint64_t
next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static struct vd_hist *
new_hist(void)
{
	struct vd_hist *h = malloc(sizeof(*h));

	assert_non_null(h);
	vd_hist_reset(h);
	return h;
}

/* ------------------------------------------------------------------ */
/* Histograms                                                          */
/* ------------------------------------------------------------------ */

/* What the histogram reports for v alone among far smaller and far larger
 * values, so that the answer is v's bucket and not clamped to min or max. */
static uint64_t
reported(struct vd_hist *h, uint64_t v)
{
	vd_hist_reset(h);
	vd_hist_record(h, 0);
	vd_hist_record(h, v);
	vd_hist_record(h, UINT64_MAX / 2);
	return vd_hist_percentile(h, 50);
}

/* One value alone: p100 is it exactly, p50 within 1%; alongside others,
 * its bucket still reports within 1%, and never less than a smaller v's. */
static void
check_value(struct vd_hist *h, uint64_t v, uint64_t *last)
{
	char what[64];
	uint64_t got;

	snprintf(what, sizeof(what), "value %" PRIu64, v);
	vd_hist_reset(h);
	vd_hist_record(h, v);
	assert_int_equal(vd_hist_percentile(h, 100), v);
	assert_near(vd_hist_percentile(h, 50), v, what);
	got = reported(h, v);
	assert_near(got, v, what);
	if (v < VD_HIST_LINEAR)
		assert_int_equal(got, v);
	if (got < *last)
		fail_msg("%s reported as %" PRIu64 ", below %" PRIu64, what, got, *last);
	*last = got;
}

static void
test_sweep_within_1pct(void **state)
{
	struct vd_hist *h = new_hist();
	uint64_t last = 0;
	int n = 0;

	(void)state;
	for (uint64_t v = 1; v <= 10000; v++, n++)
		check_value(h, v, &last);
	for (double x = 10000; x <= 1e8; x *= 1.0007, n++)
		check_value(h, (uint64_t)x, &last);
	check_value(h, VD_HIST_MAX_US, &last);
	/* every bucket edge on the way up */
	for (int k = 8; k < 28; k++) {
		uint64_t p = (uint64_t)1 << k;

		last = 0;
		check_value(h, p - 1, &last);
		check_value(h, p, &last);
		check_value(h, p + 1, &last);
	}
	print_message("checked %d values from 1 us to 100 s\n", n);
	free(h);
}

static void
test_empty(void **state)
{
	struct vd_hist *h = new_hist();

	(void)state;
	assert_int_equal(h->count, 0);
	assert_int_equal(h->min_us, UINT64_MAX);
	assert_int_equal(vd_hist_percentile(h, 0.001), 0);
	assert_int_equal(vd_hist_percentile(h, 50), 0);
	assert_int_equal(vd_hist_percentile(h, 100), 0);
	assert_true(vd_hist_mean(h) == 0.0);
	free(h);
}

static void
test_single_value(void **state)
{
	struct vd_hist *h = new_hist();

	(void)state;
	vd_hist_record(h, 12345);
	assert_int_equal(h->count, 1);
	assert_int_equal(h->min_us, 12345);
	assert_int_equal(h->max_us, 12345);
	/* one value: every percentile is it (the bucket middle is clamped
	 * to [min, max]) */
	assert_int_equal(vd_hist_percentile(h, 1), 12345);
	assert_int_equal(vd_hist_percentile(h, 50), 12345);
	assert_int_equal(vd_hist_percentile(h, 99.99), 12345);
	assert_int_equal(vd_hist_percentile(h, 100), 12345);
	assert_true(vd_hist_mean(h) == 12345.0);
	/* the lowest value of its bucket, whose middle lies above it */
	vd_hist_reset(h);
	vd_hist_record(h, 12288);
	assert_int_equal(vd_hist_percentile(h, 50), 12288);

	vd_hist_reset(h);
	vd_hist_record(h, 0);
	assert_int_equal(h->count, 1);
	assert_int_equal(vd_hist_percentile(h, 50), 0);
	assert_int_equal(vd_hist_percentile(h, 100), 0);
	free(h);
}

static void
test_uniform(void **state)
{
	struct vd_hist *h = new_hist();

	(void)state;
	for (uint64_t v = 1; v <= 100000; v++)
		vd_hist_record(h, v);
	assert_int_equal(h->count, 100000);
	assert_int_equal(h->min_us, 1);
	assert_near(vd_hist_percentile(h, 1), 1000, "p1");
	assert_near(vd_hist_percentile(h, 50), 50000, "p50");
	assert_near(vd_hist_percentile(h, 90), 90000, "p90");
	assert_near(vd_hist_percentile(h, 99), 99000, "p99");
	assert_near(vd_hist_percentile(h, 99.9), 99900, "p99.9");
	assert_int_equal(vd_hist_percentile(h, 100), 100000);
	assert_true(vd_hist_mean(h) == 50000.5);
	free(h);
}

/* 90% fast (1000..1009 us), 10% slow (200 ms): the percentiles fall on
 * either side of the gap exactly where the counts say. */
static void
test_bimodal(void **state)
{
	struct vd_hist *h = new_hist();

	(void)state;
	for (int i = 0; i < 9000; i++)
		vd_hist_record(h, 1000 + (uint64_t)(i % 10));
	for (int i = 0; i < 1000; i++)
		vd_hist_record(h, 200000);
	assert_near(vd_hist_percentile(h, 10), 1000, "p10");
	assert_near(vd_hist_percentile(h, 50), 1005, "p50");
	assert_near(vd_hist_percentile(h, 90), 1009, "p90");
	assert_near(vd_hist_percentile(h, 90.01), 200000, "p90.01");
	assert_near(vd_hist_percentile(h, 99), 200000, "p99");
	assert_int_equal(vd_hist_percentile(h, 100), 200000);
	assert_true(vd_hist_mean(h) == (9000 * 1004.5 + 1000 * 200000.0) / 10000);
	free(h);
}

/* Random values over many magnitudes: p100 is the max exactly, and the
 * percentiles rise with p and stay within [min, max]. */
static void
test_p100_is_max(void **state)
{
	struct vd_hist *h = new_hist();
	uint64_t s = 42, max = 0, min = UINT64_MAX, prev = 0;

	(void)state;
	for (int i = 0; i < 100000; i++) {
		uint64_t v = next_rand(&s) >> (36 + next_rand(&s) % 28);

		vd_hist_record(h, v);
		max = v > max ? v : max;
		min = v < min ? v : min;
	}
	assert_int_equal(h->max_us, max);
	assert_int_equal(h->min_us, min);
	assert_int_equal(vd_hist_percentile(h, 100), max);
	for (double p = 0.01; p <= 100; p += 0.37) {
		uint64_t v = vd_hist_percentile(h, p);

		assert_true(v >= prev);
		assert_true(v >= min && v <= max);
		prev = v;
	}
	free(h);
}

static void
test_merge(void **state)
{
	struct vd_hist *one = new_hist(), *a = new_hist(), *b = new_hist();
	struct vd_hist *empty = new_hist();
	uint64_t s = 7;

	(void)state;
	for (int i = 0; i < 50000; i++) {
		uint64_t v = next_rand(&s) % 3000000;

		vd_hist_record(one, v);
		vd_hist_record(i % 3 ? a : b, v);
	}
	vd_hist_merge(a, b);
	assert_memory_equal(a, one, sizeof(*one));
	/* merging an empty one changes nothing, min included */
	vd_hist_merge(a, empty);
	assert_memory_equal(a, one, sizeof(*one));
	/* and merging into an empty one copies */
	vd_hist_merge(empty, one);
	assert_memory_equal(empty, one, sizeof(*one));
	for (double p = 1; p <= 100; p += 1)
		assert_int_equal(vd_hist_percentile(a, p), vd_hist_percentile(one, p));
	free(one);
	free(a);
	free(b);
	free(empty);
}

static void
test_mean(void **state)
{
	struct vd_hist *h = new_hist();

	(void)state;
	vd_hist_record(h, 10);
	vd_hist_record(h, 20);
	vd_hist_record(h, 30);
	vd_hist_record(h, 41);
	assert_true(vd_hist_mean(h) == 25.25);
	/* the mean comes from the exact sum, not from bucket middles */
	vd_hist_reset(h);
	vd_hist_record(h, 1000001);
	vd_hist_record(h, 3000003);
	assert_true(vd_hist_mean(h) == 2000002.0);
	free(h);
}

/* Above 100 s: up to 2^28 us (268 s) still within 1%; beyond, in the top
 * bucket; max is always exact. */
static void
test_above_max(void **state)
{
	struct vd_hist *h = new_hist();
	uint64_t top = ((uint64_t)1 << 28) - ((uint64_t)1 << 20), v;

	(void)state;
	vd_hist_record(h, 10000000);   /* 10 s */
	vd_hist_record(h, 150000000);  /* 150 s */
	vd_hist_record(h, 3600000000); /* 1 h */
	assert_int_equal(h->max_us, 3600000000);
	assert_int_equal(vd_hist_percentile(h, 100), 3600000000);
	assert_near(vd_hist_percentile(h, 33), 10000000, "p33");
	assert_near(vd_hist_percentile(h, 66), 150000000, "p66");
	v = vd_hist_percentile(h, 99);
	if (v < top || v > (uint64_t)1 << 28)
		fail_msg("1 h reported as %" PRIu64 ", not in the top bucket", v);
	assert_int_equal(h->buckets[VD_HIST_BUCKETS - 1], 1);

	vd_hist_record(h, UINT64_MAX);
	assert_int_equal(h->buckets[VD_HIST_BUCKETS - 1], 2);
	assert_int_equal(vd_hist_percentile(h, 100), UINT64_MAX);
	free(h);
}

/* ------------------------------------------------------------------ */
/* Windows                                                             */
/* ------------------------------------------------------------------ */

static struct vd_window *
new_window(void)
{
	struct vd_window *w = malloc(sizeof(*w));

	assert_non_null(w);
	vd_hist_window_reset(w);
	return w;
}

/* Read span_ms at now_ms and check the count (and min, max when any). */
static void
check_read(const struct vd_window *w, int64_t now_ms, int64_t span_ms, uint64_t count,
	   uint64_t min, uint64_t max)
{
	struct vd_hist out;

	vd_hist_window_read(w, now_ms, span_ms, &out);
	if (out.count != count)
		fail_msg("read %lld ms at %lld: %" PRIu64 " values, want %" PRIu64,
			 (long long)span_ms, (long long)now_ms, out.count, count);
	if (count == 0) {
		assert_int_equal(vd_hist_percentile(&out, 50), 0);
		return;
	}
	assert_int_equal(out.min_us, min);
	assert_int_equal(out.max_us, max);
}

static void
test_window_slots(void **state)
{
	struct vd_window *w = new_window();

	(void)state;
	check_read(w, 0, VD_WINDOW_SPAN_MS, 0, 0, 0);
	vd_hist_window_record(w, 0, 100);
	vd_hist_window_record(w, 4999, 200);  /* same slot */
	vd_hist_window_record(w, 5000, 300);  /* the next */
	vd_hist_window_record(w, 12000, 400); /* the one after */
	check_read(w, 4999, 0, 2, 100, 200);
	check_read(w, 12000, 0, 1, 400, 400);
	check_read(w, 12000, 5000, 2, 300, 400);
	check_read(w, 12000, 10000, 4, 100, 400);
	check_read(w, 12000, VD_WINDOW_SPAN_MS, 4, 100, 400);
	free(w);
}

/* One value a second for two minutes, value i + 1 at second i. */
static void
test_window_spans(void **state)
{
	struct vd_window *w = new_window();

	(void)state;
	for (int64_t i = 0; i < 120; i++)
		vd_hist_window_record(w, i * 1000, (uint64_t)i + 1);
	/* 10 s at 119 s: slots from 105 s (the one holding 109 s) */
	check_read(w, 119000, 10000, 15, 106, 120);
	/* 60 s: slots from 55 s, the rest were overwritten or dropped */
	check_read(w, 119000, 60000, 65, 56, 120);
	/* longer than the ring: read as 60 s */
	check_read(w, 119000, 600000, 65, 56, 120);
	free(w);
}

static void
test_window_expiry(void **state)
{
	struct vd_window *w = new_window();

	(void)state;
	vd_hist_window_record(w, 1000, 7);
	check_read(w, 14999, 10000, 1, 7, 7);
	check_read(w, 15000, 10000, 0, 0, 0);
	check_read(w, 64999, 60000, 1, 7, 7);
	check_read(w, 65000, 60000, 0, 0, 0);
	/* a longer span is read as 60 s: the stale slot stays out */
	check_read(w, 65000, 600000, 0, 0, 0);
	free(w);
}

static void
test_window_jump(void **state)
{
	struct vd_window *w = new_window();
	int64_t t0 = 123456789, later = t0 + 3 * 3600 * 1000LL;

	(void)state;
	for (int64_t t = t0; t < t0 + 60000; t += 250)
		vd_hist_window_record(w, t, 1000);
	check_read(w, t0 + 60000, 60000, 240, 1000, 1000);
	check_read(w, later, 60000, 0, 0, 0);
	check_read(w, later, 10000, 0, 0, 0);
	vd_hist_window_record(w, later, 55);
	check_read(w, later, 60000, 1, 55, 55);
	/* and from a clock that starts below zero */
	vd_hist_window_reset(w);
	vd_hist_window_record(w, -7000, 1);
	vd_hist_window_record(w, -1, 2);
	vd_hist_window_record(w, 0, 3);
	check_read(w, 0, 60000, 3, 1, 3);
	check_read(w, 0, 5000, 2, 2, 3);
	free(w);
}

/* Slot 0 of the ring serves 0 s, 65 s, 130 s: each time, its old counts
 * are dropped (kept, they would show in the reads below). */
static void
test_window_wrap(void **state)
{
	struct vd_window *w = new_window();
	int64_t round = (int64_t)VD_WINDOW_SLOTS * SLOT;

	(void)state;
	for (int i = 0; i < 10; i++)
		vd_hist_window_record(w, 1000, 9);
	vd_hist_window_record(w, 6000, 8);
	vd_hist_window_record(w, round + 1000, 5);
	check_read(w, round + 1000, 60000, 2, 5, 8);
	vd_hist_window_record(w, 2 * round, 4);
	check_read(w, 2 * round, 60000, 1, 4, 4);
	free(w);
}

struct rec {
	int64_t t;
	uint64_t us;
};

/* What vd_hist_window_read() must give: every value whose slot overlaps
 * [now_ms - span_ms, now_ms]. */
static void
expect_read(const struct rec *r, size_t n, int64_t now_ms, int64_t span_ms,
	    struct vd_hist *out)
{
	vd_hist_reset(out);
	for (size_t i = 0; i < n; i++) {
		int64_t start = r[i].t - r[i].t % SLOT;

		if (r[i].t <= now_ms && start > now_ms - span_ms - SLOT)
			vd_hist_record(out, r[i].us);
	}
}

/* Random monotonic times (small steps, and now and then hours) against a
 * plain list of every value recorded. */
static void
test_window_model(void **state)
{
	static const int64_t spans[] = { 0, 1, 4999, 5000, 10000, 30000, 60000 };
	enum { N = 20000 };
	struct vd_window *w = new_window();
	struct rec *r = calloc(N, sizeof(*r));
	struct vd_hist got, want;
	uint64_t s = 99;
	int64_t t = 0;

	(void)state;
	assert_non_null(r);
	for (size_t i = 0; i < N; i++) {
		uint64_t x = next_rand(&s);

		t += x % 1000 == 0 ? (int64_t)(x % 7200000) : (int64_t)(x % 700);
		r[i] = (struct rec){ t, x % 5000000 };
		vd_hist_window_record(w, t, r[i].us);
		if (i % 97)
			continue;
		for (size_t j = 0; j < sizeof(spans) / sizeof(spans[0]); j++) {
			int64_t now = t + (int64_t)(x % 9000);

			vd_hist_window_read(w, now, spans[j], &got);
			expect_read(r, i + 1, now, spans[j], &want);
			assert_memory_equal(&got, &want, sizeof(got));
		}
	}
	free(r);
	free(w);
}

/* ------------------------------------------------------------------ */
/* Speed                                                               */
/* ------------------------------------------------------------------ */

static double
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Not an assertion on time: the figure is printed for whoever reads. */
static void
test_speed(void **state)
{
	enum { N = 10000000, K = 4096 };
	struct vd_hist *h = new_hist();
	uint64_t vals[K], s = 5;
	double t0, t1;

	(void)state;
	for (int i = 0; i < K; i++)
		vals[i] = next_rand(&s) >> (34 + next_rand(&s) % 30);
	t0 = now_ns();
	for (int i = 0; i < N; i++)
		vd_hist_record(h, vals[i & (K - 1)]);
	t1 = now_ns();
	assert_int_equal(h->count, N);
	print_message("vd_hist_record: %.2f ns per record (%d records)\n", (t1 - t0) / N, N);
	free(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sweep_within_1pct),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_single_value),
		cmocka_unit_test(test_uniform),
		cmocka_unit_test(test_bimodal),
		cmocka_unit_test(test_p100_is_max),
		cmocka_unit_test(test_merge),
		cmocka_unit_test(test_mean),
		cmocka_unit_test(test_above_max),
		cmocka_unit_test(test_window_slots),
		cmocka_unit_test(test_window_spans),
		cmocka_unit_test(test_window_expiry),
		cmocka_unit_test(test_window_jump),
		cmocka_unit_test(test_window_wrap),
		cmocka_unit_test(test_window_model),
		cmocka_unit_test(test_speed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
