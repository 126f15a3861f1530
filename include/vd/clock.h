/*
 * The clocks, read one way everywhere: the monotonic clock for intervals,
 * timeouts and deadlines; the wall clock only for what is shown to people
 * or compared with an engine's timestamps.
 */
#ifndef VD_CLOCK_H
#define VD_CLOCK_H

#include <stdint.h>
#include <time.h>

/* The monotonic clock in microseconds. */
static inline int64_t
vd_clock_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The monotonic clock in milliseconds. */
static inline int64_t
vd_clock_ms(void)
{
	return vd_clock_us() / 1000;
}

/* The wall clock in nanoseconds since the epoch. */
static inline int64_t
vd_clock_wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif
