/*
 * Latency histograms, log-linear (HDR style): any value from 1 us to 100 s
 * is recorded within 1% of itself, in a fixed 11 KiB of counters, so that
 * recording is a few instructions and never allocates.
 *
 * Layout: values below 256 us have a counter each; above, each power of two
 * [2^k, 2^(k+1)) is cut into 128 equal sub-buckets (so a bucket is at most
 * 1/128 = 0.78% of its values wide, and its middle within 0.4% of them).
 * The buckets go on to 2^28 us (268 s), so values somewhat above
 * VD_HIST_MAX_US are still within 1%; values from 2^28 us up are counted in
 * the top bucket. max is exact whatever the value.
 *
 * Windows: a ring of histograms, one per VD_WINDOW_SLOT_MS, covering the
 * last VD_WINDOW_SPAN_MS; reading a window merges the slots it spans, so
 * p50/p99 "over the last 10 s" and "over the last 60 s" come from one ring.
 */
#ifndef VD_HIST_H
#define VD_HIST_H

#include <stddef.h>
#include <stdint.h>

#define VD_HIST_MAX_US 100000000ULL /* 100 s */
#define VD_HIST_LINEAR 256          /* exact counters below this */
#define VD_HIST_SUB 128             /* sub-buckets per power of two above */
#define VD_HIST_BUCKETS (VD_HIST_LINEAR + 20 * VD_HIST_SUB) /* up to 2^28 us */

struct vd_hist {
	uint64_t count;   /* values recorded */
	uint64_t sum_us;  /* for the mean */
	uint64_t min_us;  /* UINT64_MAX while empty */
	uint64_t max_us;  /* exact, even above the top bucket */
	uint32_t buckets[VD_HIST_BUCKETS]; /* wrap past 2^32 values in one */
};

/* Empty it. */
void vd_hist_reset(struct vd_hist *h);

/* Count one value, in microseconds (0 counts as 0). No allocation, no
 * floating point. */
void vd_hist_record(struct vd_hist *h, uint64_t us);

/* Add src's counts to dst: the same as recording src's values into dst. */
void vd_hist_merge(struct vd_hist *dst, const struct vd_hist *src);

/* The value at percentile p (0 < p <= 100): the smallest recorded bucket
 * value such that p% of values are at or below it, reported as the middle
 * of its bucket (within 1%) but never below min nor above max (so a single
 * value is reported exactly); p = 100 gives max exactly. p <= 0 is read as
 * "the smallest value's bucket". 0 when empty. */
uint64_t vd_hist_percentile(const struct vd_hist *h, double p);

/* Mean in microseconds; 0 when empty. */
double vd_hist_mean(const struct vd_hist *h);

#define VD_WINDOW_SLOT_MS 5000
#define VD_WINDOW_SPAN_MS 60000
#define VD_WINDOW_SLOTS (VD_WINDOW_SPAN_MS / VD_WINDOW_SLOT_MS + 1)

/* A sliding window of histograms (and request counts, for rates). */
struct vd_window {
	struct vd_hist slot[VD_WINDOW_SLOTS];
	int64_t slot_start_ms[VD_WINDOW_SLOTS]; /* -1 while unused */
};

/* Empty it. Zeroed memory (calloc) is an empty window already, and stays
 * out of resident memory until values land in it: a balancer keeps one per
 * replica (132 KiB each), so it does not reset a new one. */
void vd_hist_window_reset(struct vd_window *w);

/* Count one value at time now_ms (any monotonic clock in ms, from any
 * origin). The slot now_ms falls in starts at now_ms rounded down to a
 * multiple of VD_WINDOW_SLOT_MS; a ring entry still holding an older slot
 * is emptied first. */
void vd_hist_window_record(struct vd_window *w, int64_t now_ms, uint64_t us);

/* Merge the slots that overlap [now_ms - span_ms, now_ms] into *out
 * (which is reset first), i.e. those starting in (now_ms - span_ms -
 * VD_WINDOW_SLOT_MS, now_ms]. span_ms is at most VD_WINDOW_SPAN_MS (more
 * is read as that; less than 0 as 0, the current slot alone). The window
 * is at most one slot (5 s) longer than asked: the oldest slot counts whole,
 * so for a rate divide by now_ms - (now_ms - span_ms rounded down to a slot
 * start), not by span_ms. After a jump ahead by more than the span, it is
 * empty. */
void vd_hist_window_read(const struct vd_window *w, int64_t now_ms, int64_t span_ms,
		    struct vd_hist *out);

#endif
