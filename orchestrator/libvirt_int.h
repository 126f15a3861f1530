/*
 * The libvirt driver's private header: what libvirt.c (the driver: its
 * connection, event loop and operations) and libvirt_domain.c (what a
 * domain is made of: vdctl's metadata, its XML, its files, the KVM probe)
 * share.
 */
#ifndef VD_LIBVIRT_INT_H
#define VD_LIBVIRT_INT_H

#include <libvirt/libvirt.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vd/cleanup.h"
#include "vd/driver.h"
#include "vd/strbuf.h"

#define LV_DEFAULT_URI "qemu:///system"
#define LV_DEFAULT_STATE "/var/lib/vdctl"
#define LV_KEEPALIVE_INTERVAL 5 /* s; keepalive_count missed answers close the connection */
#define LV_KEEPALIVE_COUNT 3
#define LV_MEMORY_CEILING 2     /* <memory> is this many times the size, for live growth */
#define LV_VCPU_CEILING 2       /* maximum vCPUs: this many times the first count */
#define LV_CPU_PERIOD 100000    /* us */
#define LV_EVENTS_MAX 256
#define LV_KVM_PROBE_SECONDS 8
#define LV_HINT "is libvirtd running? 'make setup' starts it"

struct lv_event_queue {
	pthread_mutex_t lock;
	struct vd_event items[LV_EVENTS_MAX];
	size_t head, count;
	int efd; /* eventfd: readable while items are queued */
	int callback;
};

struct lv {
	struct vd_driver base;
	virConnectPtr conn;
	char uri[256];
	char state_dir[1024];
	char owner[40]; /* the state directory's id, or "" */
	struct lv_event_queue *events;
};

VD_DEFINE_CLEANUP(cleanup_domain_, virDomainPtr, virDomainFree)
#define _cleanup_domain_ _cleanup_(cleanup_domain_)

/*
 * vdctl's labels and what it must remember of a replica, kept in the
 * domain's <metadata> as a <vd:replica> element (vd/labels.h).
 */
struct lv_meta {
	struct vd_labels labels;
	int guest_port, host_port;
	int64_t started_ns;
	int64_t milli_cpus, memory_bytes;
};

/*
 * A domain before its XML. QEMU opens no file of the state directory, which
 * may be one its user cannot enter: the console log is opened by libvirtd,
 * the overlay by vdctl (lv_pass_overlay()), and the guest's arguments and
 * environment are strings on QEMU's command line.
 */
struct domain_plan {
	const char *name;
	const char *type;      /* "kvm" or "qemu" */
	char kernel[PATH_MAX], initrd[PATH_MAX];
	char backing[PATH_MAX];     /* the golden disk, or "" */
	const char *backing_format; /* "qcow2" or "raw" */
	char disk[PATH_MAX];        /* its overlay in the replica's directory */
	char console[PATH_MAX];
	char *fw_args, *fw_env; /* -fw_cfg values (opt/vdctl/args is NULL without a command) */
	int host_port;
	int vcpus, max_vcpus;
	int64_t memory_kib, ceiling_kib;
};

/* The last libvirt error as "OP OBJECT: message" (VD_EXIT_ENGINE when the
 * connection failed). */
int lv_error(struct vd_error *err, const char *op, const char *object);

/* libvirt_domain.c: the metadata (read into m, which lv_meta_clear()s) */
void lv_meta_clear(struct lv_meta *m);
int lv_meta_read(virDomainPtr dom, struct lv_meta *m);
int lv_meta_write(virDomainPtr dom, const struct lv_meta *m);

/* A replica's directory of files, STATE/libvirt/<name>, and its removal. */
void lv_replica_dir(const struct lv *lv, const char *name, char *buf, size_t size);
void lv_remove_tree(const char *dir);

/* PATH of a manifest, absolute for libvirtd (relative to the manifest's
 * directory). */
void lv_resolve(const struct vd_service *svc, const char *path, char *out, size_t size);

/* A qcow2 overlay of p->backing in DIR, made through a transient storage
 * pool and owned by vdctl's user; its path into p->disk. */
int lv_make_overlay(struct lv *lv, const char *dir, struct domain_plan *p,
		    struct vd_error *err);

/* Before starting replica NAME: hand its overlay, if it has one, to libvirt
 * as an open file for the disk's fdgroup; -1 with err when it cannot. */
int lv_pass_overlay(struct lv *lv, virDomainPtr dom, const char *name, struct vd_error *err);

/* Everything about the domain of replica NAME decided before its XML: type
 * (KVM or TCG), files, port, vCPUs, memory, the guest's arguments; -1 with
 * err (VD_EXIT_INPUT) for arguments a VM cannot take. lv_plan_clear() frees
 * it, whatever was returned. */
int lv_plan_domain(struct lv *lv, const struct vd_service *svc, const char *name,
		   const char *dir, struct domain_plan *p, struct vd_error *err);
void lv_plan_clear(struct domain_plan *p);

/* The domain's XML, every value escaped; NULL when out of memory. */
char *lv_domain_xml(const struct vd_service *svc, const struct vd_labels *l,
		    const struct domain_plan *p);

#endif
