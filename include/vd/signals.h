/*
 * What a balancer saw, second by second: the signals the autoscaler steers
 * by. A ring of one-second slots, each with the arrivals, the completions
 * and the balancer's own refusals of that second, the time-weighted
 * in-flight and queue lengths (integrals, requests x microseconds), and
 * three small histograms of the requests completed in it: queue wait,
 * service time (response time less queue wait) and response time.
 *
 * A window of any length up to the ring's is read by adding up its slots,
 * so "the last 6 s" and "the last 120 s" come from one ring. The histograms
 * are coarse on purpose (8 buckets an octave: a percentile is reported
 * within 6.25% of the values in its bucket; 736 bytes a histogram): they
 * steer a replica count, and the balancer's own 1% histograms (vd/hist.h)
 * stay what status reports as latency.
 *
 * Recording is a few instructions and never allocates: the ring is
 * allocated once, for the longest window its reader will ask for.
 */
#ifndef VD_SIGNALS_H
#define VD_SIGNALS_H

#include <stdint.h>

#define VD_SIG_SUB 8 /* buckets an octave */
/* 0-63 us linear in 8 buckets, then octaves 2^6 .. 2^27 us (134 s) */
#define VD_SIG_BUCKETS (8 + 22 * VD_SIG_SUB)
#define VD_SIG_MAX_SPAN_MS (3600 * 1000) /* the longest window a ring keeps */

struct vd_signals;

/* A ring for windows up to SPAN_MS (at most VD_SIG_MAX_SPAN_MS; 1 s at
 * least), its clock starting at NOW_US (any monotonic clock in us). NULL
 * when out of memory. */
struct vd_signals *vd_signals_new(int64_t span_ms, int64_t now_us);

/* Free it; NULL is fine. */
void vd_signals_free(struct vd_signals *s);

/* The longest window it keeps, in ms. */
int64_t vd_signals_span(const struct vd_signals *s);

/* A request arrived (its head is whole). */
void vd_signals_arrive(struct vd_signals *s, int64_t now_us);

/* A request the balancer answered itself (no replica, queue full or timed
 * out, a replica failed it): an arrival not served. */
void vd_signals_refuse(struct vd_signals *s, int64_t now_us);

/* A response was relayed: it waited WAIT_US in the queue and took
 * TOTAL_US from its head to its end. COLD_US of its wait (at most WAIT_US)
 * was for a replica to start, none being up when it came: that part is
 * left out of the response time, which steers the autoscaler's latency
 * guard (a cold start is the autoscaler's own doing, not a sign of too few
 * replicas), and kept in the wait. */
void vd_signals_complete(struct vd_signals *s, int64_t now_us, uint64_t wait_us, uint64_t total_us,
			 uint64_t cold_us);

/* The requests on replicas and in the queue are now INFLIGHT and QUEUED
 * (called after every change; the time until the next call is counted at
 * these levels). */
void vd_signals_level(struct vd_signals *s, int64_t now_us, int inflight, int queued);

/* One window. Means are over the requests completed in it; 0 when none. */
struct vd_signals_window {
	double seconds;                        /* time covered: the span, or less since the start */
	double arrivals, completions, refused; /* prorated at the window's edge */
	double rate;                           /* arrivals a second */
	double throughput;                     /* completions a second */
	double inflight, queue;                /* time-weighted means */
	double wait_ms, service_ms;            /* means */
	double wait_p95_ms, service_p95_ms;
	double p50_ms, p95_ms, p99_ms; /* response time */
};

/* The window of SPAN_MS back from NOW_US (at most the ring's span; 1 s at
 * least): every slot it covers, the oldest weighted by the part of it that
 * falls inside (its histogram counted whole when more than half does). */
void vd_signals_read(struct vd_signals *s, int64_t now_us, int64_t span_ms,
		     struct vd_signals_window *out);

#endif
