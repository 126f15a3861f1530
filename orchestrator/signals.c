/*
 * The balancer's per-second signals (vd/signals.h): a ring of one-second
 * slots, and windows read by adding slots up.
 *
 * The in-flight and queue integrals are kept exactly: every change of
 * level first credits the time since the last change, at the old level, to
 * the seconds it spans, so a window's mean is the true time average.
 */
#include "vd/signals.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define SEC 1000000LL

struct slot {
	int64_t sec; /* the second it holds (now_us / SEC); -1 while unused */
	uint32_t arrivals, completions, refused;
	uint64_t wait_us, service_us;   /* sums over completions */
	uint64_t inflight_us, queue_us; /* requests x us */
	uint32_t wait[VD_SIG_BUCKETS], service[VD_SIG_BUCKETS], response[VD_SIG_BUCKETS];
};

struct vd_signals {
	int64_t start_us, last_us; /* the ring's start; the last change of level */
	int inflight, queued;      /* the levels since last_us */
	size_t n;                  /* slots */
	struct slot slot[];
};

static int
bucket(uint64_t us)
{
	int k;

	if (us < 64)
		return (int)(us >> 3);
	k = 63 - __builtin_clzll(us); /* 2^k <= us */
	if (k > 27)
		return VD_SIG_BUCKETS - 1;
	return 8 + (k - 6) * VD_SIG_SUB + (int)((us >> (k - 3)) & 7);
}

/* The middle of bucket B, in us. */
static double
bucket_mid(int b)
{
	int k, sub;

	if (b < 8)
		return b * 8 + 4;
	k = 6 + (b - 8) / VD_SIG_SUB;
	sub = (b - 8) % VD_SIG_SUB;
	return (double)((8 + sub) << (k - 3)) + (double)(1LL << (k - 3)) / 2;
}

struct vd_signals *
vd_signals_new(int64_t span_ms, int64_t now_us)
{
	struct vd_signals *s;
	size_t n;

	if (span_ms < 1000)
		span_ms = 1000;
	if (span_ms > VD_SIG_MAX_SPAN_MS)
		span_ms = VD_SIG_MAX_SPAN_MS;
	/* the window's seconds, the current one, and the one its edge cuts */
	n = (size_t)((span_ms + 999) / 1000) + 2;
	/* calloc: slots stay out of resident memory until used */
	s = calloc(1, sizeof(*s) + n * sizeof(s->slot[0]));
	if (!s)
		return NULL;
	s->n = n;
	s->start_us = s->last_us = now_us;
	for (size_t i = 0; i < n; i++)
		s->slot[i].sec = -1;
	return s;
}

void
vd_signals_free(struct vd_signals *s)
{
	free(s);
}

int64_t
vd_signals_span(const struct vd_signals *s)
{
	return (int64_t)(s->n - 2) * 1000;
}

/* The slot of second SEC, emptied when it held an older one. */
static struct slot *
slot_of(struct vd_signals *s, int64_t sec)
{
	struct slot *sl = &s->slot[(uint64_t)sec % s->n];

	if (sl->sec != sec) {
		memset(sl, 0, sizeof(*sl));
		sl->sec = sec;
	}
	return sl;
}

/* Credit the time from last_us to NOW_US at the levels held since. */
static void
advance(struct vd_signals *s, int64_t now_us)
{
	int64_t oldest = now_us - (int64_t)s->n * SEC;

	if (now_us <= s->last_us)
		return;
	if (s->last_us < oldest) /* what is older than the ring is gone anyway */
		s->last_us = oldest / SEC * SEC;
	while (s->last_us < now_us) {
		int64_t sec = s->last_us / SEC, end = (sec + 1) * SEC;
		struct slot *sl = slot_of(s, sec);
		int64_t dt;

		if (end > now_us)
			end = now_us;
		dt = end - s->last_us;
		sl->inflight_us += (uint64_t)s->inflight * (uint64_t)dt;
		sl->queue_us += (uint64_t)s->queued * (uint64_t)dt;
		s->last_us = end;
	}
}

void
vd_signals_arrive(struct vd_signals *s, int64_t now_us)
{
	slot_of(s, now_us / SEC)->arrivals++;
}

void
vd_signals_refuse(struct vd_signals *s, int64_t now_us)
{
	slot_of(s, now_us / SEC)->refused++;
}

void
vd_signals_complete(struct vd_signals *s, int64_t now_us, uint64_t wait_us, uint64_t total_us,
		    uint64_t cold_us)
{
	struct slot *sl = slot_of(s, now_us / SEC);
	uint64_t service = total_us > wait_us ? total_us - wait_us : 0;

	sl->completions++;
	sl->wait_us += wait_us;
	sl->service_us += service;
	sl->wait[bucket(wait_us)]++;
	sl->service[bucket(service)]++;
	sl->response[bucket(total_us > cold_us ? total_us - cold_us : 0)]++;
}

void
vd_signals_level(struct vd_signals *s, int64_t now_us, int inflight, int queued)
{
	advance(s, now_us);
	s->inflight = inflight;
	s->queued = queued;
}

/* The value at percentile P of counts H (N of them), in ms; 0 when empty. */
static double
percentile_ms(const double *h, double n, double p)
{
	double want = n * p / 100, seen = 0;

	if (n <= 0)
		return 0;
	for (int b = 0; b < VD_SIG_BUCKETS; b++) {
		seen += h[b];
		if (h[b] > 0 && seen >= want)
			return bucket_mid(b) / 1000;
	}
	return bucket_mid(VD_SIG_BUCKETS - 1) / 1000;
}

void
vd_signals_read(struct vd_signals *s, int64_t now_us, int64_t span_ms,
		struct vd_signals_window *out)
{
	double wait[VD_SIG_BUCKETS] = { 0 }, service[VD_SIG_BUCKETS] = { 0 };
	double response[VD_SIG_BUCKETS] = { 0 };
	double done_whole = 0, wait_us = 0, service_us = 0, inflight_us = 0, queue_us = 0;
	int64_t from, first, last;
	bool clipped;

	memset(out, 0, sizeof(*out));
	advance(s, now_us);
	if (span_ms < 1000)
		span_ms = 1000;
	if (span_ms > vd_signals_span(s))
		span_ms = vd_signals_span(s);
	from = now_us - span_ms * 1000;
	clipped = from <= s->start_us; /* nothing happened before the start */
	if (clipped)
		from = s->start_us;
	out->seconds = (double)(now_us - from) / SEC;
	if (out->seconds <= 0)
		return;
	first = from / SEC;
	last = now_us / SEC;
	for (int64_t sec = first; sec <= last; sec++) {
		struct slot *sl = &s->slot[(uint64_t)sec % s->n];
		double w = 1;

		if (sl->sec != sec)
			continue;
		if (sec == first && !clipped) /* the part of the oldest second inside */
			w = (double)((sec + 1) * SEC - from) / SEC;
		out->arrivals += w * sl->arrivals;
		out->completions += w * sl->completions;
		out->refused += w * sl->refused;
		inflight_us += w * (double)sl->inflight_us;
		queue_us += w * (double)sl->queue_us;
		if (w < 0.5)
			continue;
		/* means and percentiles over the requests counted whole */
		done_whole += sl->completions;
		wait_us += (double)sl->wait_us;
		service_us += (double)sl->service_us;
		for (int b = 0; b < VD_SIG_BUCKETS; b++) {
			wait[b] += sl->wait[b];
			service[b] += sl->service[b];
			response[b] += sl->response[b];
		}
	}
	out->rate = out->arrivals / out->seconds;
	out->throughput = out->completions / out->seconds;
	out->inflight = inflight_us / (out->seconds * SEC);
	out->queue = queue_us / (out->seconds * SEC);
	if (done_whole > 0) {
		out->wait_ms = wait_us / done_whole / 1000;
		out->service_ms = service_us / done_whole / 1000;
	}
	out->wait_p95_ms = percentile_ms(wait, done_whole, 95);
	out->service_p95_ms = percentile_ms(service, done_whole, 95);
	out->p50_ms = percentile_ms(response, done_whole, 50);
	out->p95_ms = percentile_ms(response, done_whole, 95);
	out->p99_ms = percentile_ms(response, done_whole, 99);
}
