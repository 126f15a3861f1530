/*
 * Engines: where replicas run.
 *
 * An engine is a value: a name, a driver (the vtable of its backend kind,
 * vd/driver.h), an endpoint, and the node it runs on. A pass of work (an
 * apply, a `get`, one round of the controller) makes the set once, lists
 * each engine it needs once, every replica tagged with the engine that holds
 * it, and asks capacity per engine. Every loop over engines is here: nothing
 * else picks a driver or keeps an array by backend kind.
 *
 * Today's set is the one a node configuration describes: a Docker engine and
 * a libvirt engine on this machine, the node "local". A service goes to the
 * engine of its backend (vd_engines_for); placement across several engines
 * and nodes comes later, behind the same calls.
 *
 * Observing costs one call per engine. Docker's list carries labels, state
 * and ports but not limits or start times, which only a per-container
 * inspect gives. So the engine layer keeps what vdctl itself last saw of each
 * replica it made or changed (limits and start time, from the inspect that
 * follows every create, start and resize) in DIR/engines/NAME.json, and
 * completes a list from it; a replica it has no record of is inspected. A
 * record is a cache, never the truth: apply checks the engine before acting
 * on a recorded value that differs from what it wants, and the controller
 * inspects everything on its slow resync.
 */
#ifndef VD_ENGINE_H
#define VD_ENGINE_H

#include <stdbool.h>
#include <stddef.h>

#include "vd/driver.h"
#include "vd/error.h"
#include "vd/replica.h"
#include "vd/state.h"

/* Where the engines are: today, the endpoints of this machine's two. */
struct vd_node_config {
	/* unix:///path or tcp://host:port; NULL = $DOCKER_HOST or the default */
	const char *docker_endpoint;
	const char *libvirt_uri;     /* NULL = $VDCTL_LIBVIRT_URI or qemu:///system */
	const char *state_dir;       /* NULL = /var/lib/vdctl */
	int timeout_ms;              /* per engine call; 0 = 30000 */
};

/* How much a pass needs an engine's list. */
enum vd_engine_need {
	VD_ENGINE_SKIP,    /* not asked (its library is not even loaded) */
	VD_ENGINE_ASK,     /* listed when it answers */
	VD_ENGINE_REQUIRE, /* must answer, else the pass fails (exit 3) */
};

struct vd_engines;

struct vd_engine {
	char name[VD_ENGINE_NAME_MAX]; /* unique in the set: "docker", "libvirt" */
	const char *node;              /* the node it runs on: "local" */
	const struct vd_driver_ops *ops;
	enum vd_backend backend;
	char endpoint[512];
	struct vd_driver_config cfg; /* what vd_engine_connect() opens */
	enum vd_engine_need need;    /* set with vd_engines_need() before observing */
	/* what the last vd_engines_observe() found */
	bool asked, up;
	struct vd_error error; /* why it did not answer */
	struct vd_engines *set;
	char **suspects; /* ids to inspect at the next observation */
	size_t nsuspects;
};

struct vd_engines {
	struct vd_engine *v;
	size_t n;
	char *state_dir;
	char owner[VD_STATE_ID_LEN + 1]; /* the state directory's id; "" while it has none */
};

/* Flags of vd_engines_observe(). */
enum {
	VD_OBSERVE_FULL = 1 << 0,       /* inspect every partial record: trust no recorded value */
	VD_OBSERVE_ALL_OWNERS = 1 << 1, /* also the replicas other state directories made */
};

/* The set a node configuration describes; nothing is opened yet. The state
 * directory's id is read when it has one (vd/state.h). -1 with err when out
 * of memory or the id is damaged. */
int vd_engines_init(struct vd_engines *es, const struct vd_node_config *node,
		    struct vd_error *err);

/* Make sure the state directory has an id (making it, and the directory,
 * when it has none), before anything is made. */
int vd_engines_own(struct vd_engines *es, struct vd_error *err);
void vd_engines_release(struct vd_engines *es);

/* The engine that runs replicas of BACKEND, or NULL. */
struct vd_engine *vd_engines_for(const struct vd_engines *es, enum vd_backend backend);

/* The engine called NAME, or NULL. */
struct vd_engine *vd_engines_find(const struct vd_engines *es, const char *name);

/* Raise E's need to at least NEED; every engine with vd_engines_need_all(). */
void vd_engines_need(struct vd_engine *e, enum vd_engine_need need);
void vd_engines_need_all(struct vd_engines *es, enum vd_engine_need need);

/*
 * List every engine with a need, one call each, into *out (sorted by
 * service, then index), each replica's record complete and tagged with its
 * engine. Only this state directory's replicas are listed: those that carry
 * its id, and those made before vdctl labelled owners whose service it
 * recorded (unless VD_OBSERVE_ALL_OWNERS). Each engine's asked/up/error
 * says how it went. Returns -1 when an engine the pass requires did not answer or failed (its error), or when
 * engines were asked and none answered ("no engine answers").
 */
int vd_engines_observe(struct vd_engines *es, unsigned flags, struct vd_replica_list *out,
		       struct vd_error *err);

/* An event of engine NAME said replica ID changed: the next observation asks
 * the engine about it instead of trusting its list. */
void vd_engines_suspect(struct vd_engines *es, const char *name, const char *id);

/* Ask E again about the replica R (tagged with E), replacing the record with
 * the engine's whole answer. */
int vd_engines_verify(struct vd_engines *es, struct vd_replica *r, struct vd_error *err);

/* A new connection to E for the calling thread (a driver connection is used
 * by one thread at a time); vd_driver_close() it. */
int vd_engine_connect(const struct vd_engine *e, struct vd_driver **out, struct vd_error *err);

/* How big E's machine is. */
int vd_engine_capacity(const struct vd_engine *e, struct vd_capacity *out, struct vd_error *err);

/*
 * Calls that change a replica or look at it whole, on a connection D to E:
 * the driver's, and then the record is kept up to date (an inspect notes
 * what it saw, a resize the new limits, a remove forgets). OUT is tagged
 * with E.
 */
int vd_engine_inspect(const struct vd_engine *e, struct vd_driver *d, const char *id,
		      struct vd_replica *out, struct vd_error *err);
int vd_engine_resize(const struct vd_engine *e, struct vd_driver *d, const char *id,
		     int64_t milli_cpus, int64_t memory_bytes, struct vd_error *err);
int vd_engine_remove(const struct vd_engine *e, struct vd_driver *d, const char *id,
		     struct vd_error *err);

#endif
