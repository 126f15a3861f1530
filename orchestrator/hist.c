/*
 * Latency histograms: log-linear counters (HDR style) that record a value in
 * a few instructions, without allocating or touching floating point, and
 * report any percentile within 1%; and a ring of them, one per 5 s slot, so
 * that the last 10 s and the last 60 s are read from the same structure.
 *
 * Bucket i below VD_HIST_LINEAR holds the value i. Above, a value v with
 * its highest bit k (2^k <= v < 2^(k+1)) keeps its top 8 bits: shift =
 * k - 7, and bucket (shift << 7) + (v >> shift) holds the 2^shift values
 * sharing them. The layout is continuous: v = 256 gives bucket 256, the
 * first one after the exact counters.
 */
#include <string.h>

#include "vd/hist.h"

#define TOP_BUCKET (VD_HIST_BUCKETS - 1)

/* ------------------------------------------------------------------ */
/* Histograms                                                          */
/* ------------------------------------------------------------------ */

static unsigned
bucket_of(uint64_t us)
{
	unsigned shift;
	uint64_t idx;

	if (us < VD_HIST_LINEAR)
		return (unsigned)us;
	shift = 63 - (unsigned)__builtin_clzll(us) - 7;
	idx = ((uint64_t)shift << 7) + (us >> shift);
	return idx < VD_HIST_BUCKETS ? (unsigned)idx : TOP_BUCKET;
}

/* The middle of bucket i: its value below VD_HIST_LINEAR, else its lowest
 * value plus half its width. */
static uint64_t
bucket_value(unsigned i)
{
	unsigned shift;

	if (i < VD_HIST_LINEAR)
		return i;
	shift = (i >> 7) - 1;
	return ((uint64_t)(128 | (i & 127)) << shift) + ((uint64_t)1 << (shift - 1));
}

void
vd_hist_reset(struct vd_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min_us = UINT64_MAX;
}

void
vd_hist_record(struct vd_hist *h, uint64_t us)
{
	h->count++;
	h->sum_us += us;
	/* the first value sets both: an empty histogram's min and max are
	 * never read, so zeroed memory is an empty histogram too */
	if (h->count == 1 || us < h->min_us)
		h->min_us = us;
	if (h->count == 1 || us > h->max_us)
		h->max_us = us;
	h->buckets[bucket_of(us)]++;
}

void
vd_hist_merge(struct vd_hist *dst, const struct vd_hist *src)
{
	if (src->count == 0)
		return;
	dst->count += src->count;
	dst->sum_us += src->sum_us;
	if (src->min_us < dst->min_us)
		dst->min_us = src->min_us;
	if (src->max_us > dst->max_us)
		dst->max_us = src->max_us;
	for (size_t i = 0; i < VD_HIST_BUCKETS; i++)
		dst->buckets[i] += src->buckets[i];
}

/* How many values must lie at or below the answer for percentile p: at
 * least 1, at most count. */
static uint64_t
rank_of(uint64_t count, double p)
{
	double r = p * (double)count / 100.0;
	uint64_t rank;

	if (!(r >= 1.0))
		return 1;
	if (r >= (double)count)
		return count;
	rank = (uint64_t)r;
	return rank + ((double)rank < r);
}

uint64_t
vd_hist_percentile(const struct vd_hist *h, double p)
{
	uint64_t rank, seen = 0, v;
	unsigned i;

	if (h->count == 0)
		return 0;
	if (p >= 100.0)
		return h->max_us;
	rank = rank_of(h->count, p);
	for (i = 0; i < TOP_BUCKET; i++) {
		seen += h->buckets[i];
		if (seen >= rank)
			break;
	}
	v = bucket_value(i);
	if (v < h->min_us)
		return h->min_us;
	return v > h->max_us ? h->max_us : v;
}

double
vd_hist_mean(const struct vd_hist *h)
{
	return h->count ? (double)h->sum_us / (double)h->count : 0.0;
}

/* ------------------------------------------------------------------ */
/* Sliding windows                                                     */
/* ------------------------------------------------------------------ */

/* The start of the slot holding now_ms: now_ms rounded down (towards
 * minus infinity) to a multiple of VD_WINDOW_SLOT_MS. */
static int64_t
slot_start(int64_t now_ms)
{
	int64_t r = now_ms % VD_WINDOW_SLOT_MS;

	return now_ms - (r < 0 ? r + VD_WINDOW_SLOT_MS : r);
}

/* The ring index of the slot starting at start (a multiple of the slot). */
static size_t
slot_index(int64_t start)
{
	int64_t r = (start / VD_WINDOW_SLOT_MS) % VD_WINDOW_SLOTS;

	return (size_t)(r < 0 ? r + VD_WINDOW_SLOTS : r);
}

void
vd_hist_window_reset(struct vd_window *w)
{
	for (size_t i = 0; i < VD_WINDOW_SLOTS; i++) {
		vd_hist_reset(&w->slot[i]);
		w->slot_start_ms[i] = -1;
	}
}

void
vd_hist_window_record(struct vd_window *w, int64_t now_ms, uint64_t us)
{
	int64_t start = slot_start(now_ms);
	size_t i = slot_index(start);

	if (w->slot_start_ms[i] != start) {
		/* an empty slot needs no clearing: its pages stay untouched
		 * until a value lands in them */
		if (w->slot[i].count)
			vd_hist_reset(&w->slot[i]);
		w->slot_start_ms[i] = start;
	}
	vd_hist_record(&w->slot[i], us);
}

/* Does the slot starting at start overlap [now_ms - span_ms, now_ms]? The
 * difference is taken unsigned, so no clock value can overflow it. Unused
 * slots (start -1) may pass when now_ms is near 0, but they are empty. */
static int
slot_in_span(int64_t start, int64_t now_ms, int64_t span_ms)
{
	if (start > now_ms)
		return 0;
	return (uint64_t)now_ms - (uint64_t)start < (uint64_t)(span_ms + VD_WINDOW_SLOT_MS);
}

void
vd_hist_window_read(const struct vd_window *w, int64_t now_ms, int64_t span_ms,
	       struct vd_hist *out)
{
	if (span_ms < 0)
		span_ms = 0;
	if (span_ms > VD_WINDOW_SPAN_MS)
		span_ms = VD_WINDOW_SPAN_MS;
	vd_hist_reset(out);
	for (size_t i = 0; i < VD_WINDOW_SLOTS; i++) {
		if (slot_in_span(w->slot_start_ms[i], now_ms, span_ms))
			vd_hist_merge(out, &w->slot[i]);
	}
}
