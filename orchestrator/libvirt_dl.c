/*
 * libvirt, loaded when first used.
 *
 * vdctl calls libvirt through these stubs instead of linking it: each one
 * finds its function in libvirt.so.0 (opened with dlopen on the first call)
 * and calls it. A process that never touches a VM (a controller of
 * containers, `vdctl apply` of a Docker manifest) never maps libvirt and its
 * 56 libraries, which cost about 12 MB of resident memory however little of
 * them is used (tests/bench/controller.sh). When libvirt cannot be loaded,
 * each stub fails the way its function fails (-1 or NULL) and
 * virGetLastErrorMessage() says why.
 *
 * The prototypes are libvirt's own, from its headers, so the compiler checks
 * every stub against them.
 *
 * libxml2, which libvirt brings along, prints some messages on stderr by
 * itself, beside the error libvirt reports: "I/O warning : failed to load
 * external entity" when libvirt parses a file that is missing (the test
 * driver's test:///PATH, for one). vdctl reports libvirt's errors through
 * struct vd_error, so as libvirt is loaded, libxml2's messages are turned to
 * the debug log (vdctl -v shows them).
 */
#include <dlfcn.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vd/log.h"

#define LIBVIRT_SONAME "libvirt.so.0"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static void *lib;
static char why[512];

/* libxml2's xmlGenericErrorFunc: a message comes in pieces; each line, once
 * whole, goes to the debug log. */
static void VD_PRINTF(2, 3)
xml_message(void *ctx, const char *fmt, ...)
{
	static __thread char line[512];
	static __thread size_t len;
	va_list ap;
	char *nl;
	int n;

	(void)ctx;
	va_start(ap, fmt);
	n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	va_end(ap);
	if (n > 0)
		len = len + (size_t)n < sizeof(line) ? len + (size_t)n : sizeof(line) - 1;
	while ((nl = memchr(line, '\n', len)) || len == sizeof(line) - 1) {
		size_t end = nl ? (size_t)(nl - line) : len;

		line[end] = '\0';
		if (end)
			vd_debug("libxml2: %s", line);
		len -= nl ? end + 1 : end;
		memmove(line, line + end + (nl ? 1 : 0), len);
	}
}

/*
 * libxml2 keeps its handler per thread, copied from a default when a thread
 * first uses it: set both before any libvirt call, here, and every thread
 * that parses XML for libvirt has it.
 */
static void
quiet_libxml2(void)
{
	typedef void (*handler_fn)(void *, const char *, ...);
	void (*set)(void *, handler_fn);

	if ((set = (void (*)(void *, handler_fn))dlsym(lib, "xmlThrDefSetGenericErrorFunc")))
		set(NULL, xml_message);
	if ((set = (void (*)(void *, handler_fn))dlsym(lib, "xmlSetGenericErrorFunc")))
		set(NULL, xml_message);
}

static void
load(void)
{
	const char *e;

	lib = dlopen(LIBVIRT_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		e = dlerror();
		snprintf(why, sizeof(why), "cannot load %s: %s", LIBVIRT_SONAME, e ? e : "?");
		return;
	}
	quiet_libxml2();
}

static void *
sym(const char *name)
{
	void *p;

	pthread_once(&once, load);
	if (!lib)
		return NULL;
	if (!(p = dlsym(lib, name)))
		snprintf(why, sizeof(why), "%s has no %s", LIBVIRT_SONAME, name);
	return p;
}

/* A stub: the function's pointer, found once, then called. */
#define STUB(ret, fail, name, params, args)                                      \
	ret name params                                                          \
	{                                                                        \
		static ret(*fn) params;                                          \
		ret(*f) params = __atomic_load_n(&fn, __ATOMIC_ACQUIRE);         \
                                                                                 \
		if (!f) {                                                        \
			if (!(f = (ret(*) params)sym(#name)))                    \
				return fail;                                     \
			__atomic_store_n(&fn, f, __ATOMIC_RELEASE);              \
		}                                                                \
		return f args;                                                   \
	}

#define STUB_VOID(name, params, args)                                            \
	void name params                                                         \
	{                                                                        \
		static void(*fn) params;                                         \
		void(*f) params = __atomic_load_n(&fn, __ATOMIC_ACQUIRE);        \
                                                                                 \
		if (!f && !(f = (void(*) params)sym(#name)))                     \
			return;                                                  \
		__atomic_store_n(&fn, f, __ATOMIC_RELEASE);                      \
		f args;                                                          \
	}

const char *
virGetLastErrorMessage(void)
{
	static const char *(*fn)(void);
	const char *(*f)(void) = __atomic_load_n(&fn, __ATOMIC_ACQUIRE);

	if (!f) {
		if (!(f = (const char *(*)(void))sym("virGetLastErrorMessage")))
			return why;
		__atomic_store_n(&fn, f, __ATOMIC_RELEASE);
	}
	return f();
}

STUB(int, -1, virConnectClose, (virConnectPtr conn), (conn))
STUB(int, -1, virConnectDomainEventDeregisterAny, (virConnectPtr conn, int callbackID), (conn, callbackID))
STUB(int, -1, virConnectDomainEventRegisterAny, (virConnectPtr conn, virDomainPtr dom, int eventID, virConnectDomainEventGenericCallback cb, void *opaque, virFreeCallback freecb), (conn, dom, eventID, cb, opaque, freecb))
STUB(int, -1, virConnectGetLibVersion, (virConnectPtr conn, unsigned long *libVer), (conn, libVer))
STUB(int, -1, virConnectIsAlive, (virConnectPtr conn), (conn))
STUB(int, -1, virConnectListAllDomains, (virConnectPtr conn, virDomainPtr **domains, unsigned int flags), (conn, domains, flags))
STUB(virConnectPtr, NULL, virConnectOpen, (const char *name), (name))
STUB(int, -1, virConnectSetKeepAlive, (virConnectPtr conn, int interval, unsigned int count), (conn, interval, count))
STUB(int, -1, virDomainCreate, (virDomainPtr domain), (domain))
STUB(virDomainPtr, NULL, virDomainCreateXML, (virConnectPtr conn, const char *xmlDesc, unsigned int flags), (conn, xmlDesc, flags))
STUB(virDomainPtr, NULL, virDomainDefineXML, (virConnectPtr conn, const char *xml), (conn, xml))
STUB(int, -1, virDomainDestroy, (virDomainPtr domain), (domain))
STUB(int, -1, virDomainFDAssociate, (virDomainPtr domain, const char *name, unsigned int nfds, int *fds, unsigned int flags), (domain, name, nfds, fds, flags))
STUB(int, -1, virDomainFree, (virDomainPtr domain), (domain))
STUB(int, -1, virDomainGetInfo, (virDomainPtr domain, virDomainInfoPtr info), (domain, info))
STUB(unsigned long, 0, virDomainGetMaxMemory, (virDomainPtr domain), (domain))
STUB(char *, NULL, virDomainGetMetadata, (virDomainPtr domain, int type, const char *uri, unsigned int flags), (domain, type, uri, flags))
STUB(const char *, NULL, virDomainGetName, (virDomainPtr domain), (domain))
STUB(int, -1, virDomainGetState, (virDomainPtr domain, int *state, int *reason, unsigned int flags), (domain, state, reason, flags))
STUB(int, -1, virDomainGetUUIDString, (virDomainPtr domain, char *buf), (domain, buf))
STUB(int, -1, virDomainGetVcpusFlags, (virDomainPtr domain, unsigned int flags), (domain, flags))
STUB(int, -1, virDomainIsActive, (virDomainPtr dom), (dom))
STUB(int, -1, virDomainIsPersistent, (virDomainPtr dom), (dom))
STUB(virDomainPtr, NULL, virDomainLookupByName, (virConnectPtr conn, const char *name), (conn, name))
STUB(virDomainPtr, NULL, virDomainLookupByUUIDString, (virConnectPtr conn, const char *uuid), (conn, uuid))
STUB(int, -1, virDomainMemoryStats, (virDomainPtr dom, virDomainMemoryStatPtr stats, unsigned int nr_stats, unsigned int flags), (dom, stats, nr_stats, flags))
STUB(int, -1, virDomainSetMemoryFlags, (virDomainPtr domain, unsigned long memory, unsigned int flags), (domain, memory, flags))
STUB(int, -1, virDomainSetMetadata, (virDomainPtr domain, int type, const char *metadata, const char *key, const char *uri, unsigned int flags), (domain, type, metadata, key, uri, flags))
STUB(int, -1, virDomainSetSchedulerParametersFlags, (virDomainPtr domain, virTypedParameterPtr params, int nparams, unsigned int flags), (domain, params, nparams, flags))
STUB(int, -1, virDomainSetVcpusFlags, (virDomainPtr domain, unsigned int nvcpus, unsigned int flags), (domain, nvcpus, flags))
STUB(int, -1, virDomainShutdownFlags, (virDomainPtr domain, unsigned int flags), (domain, flags))
STUB(int, -1, virDomainUndefine, (virDomainPtr domain), (domain))
STUB(int, -1, virDomainUndefineFlags, (virDomainPtr domain, unsigned int flags), (domain, flags))
STUB(int, -1, virEventRegisterDefaultImpl, (void), ())
STUB(int, -1, virEventRunDefaultImpl, (void), ())
STUB(virErrorPtr, NULL, virGetLastError, (void), ())
STUB(int, -1, virInitialize, (void), ())
STUB(int, -1, virNodeGetInfo, (virConnectPtr conn, virNodeInfoPtr info), (conn, info))
STUB(int, -1, virNodeGetMemoryStats, (virConnectPtr conn, int cellNum, virNodeMemoryStatsPtr params, int *nparams, unsigned int flags), (conn, cellNum, params, nparams, flags))
STUB_VOID(virResetLastError, (void), ())
STUB_VOID(virSetErrorFunc, (void *userData, virErrorFunc handler), (userData, handler))
STUB(virStoragePoolPtr, NULL, virStoragePoolCreateXML, (virConnectPtr conn, const char *xmlDesc, unsigned int flags), (conn, xmlDesc, flags))
STUB(int, -1, virStoragePoolDestroy, (virStoragePoolPtr pool), (pool))
STUB(int, -1, virStoragePoolFree, (virStoragePoolPtr pool), (pool))
STUB(virStorageVolPtr, NULL, virStorageVolCreateXML, (virStoragePoolPtr pool, const char *xmldesc, unsigned int flags), (pool, xmldesc, flags))
STUB(int, -1, virStorageVolFree, (virStorageVolPtr vol), (vol))
STUB(int, -1, virTypedParamsAddLLong, (virTypedParameterPtr *params, int *nparams, int *maxparams, const char *name, long long value), (params, nparams, maxparams, name, value))
STUB_VOID(virTypedParamsFree, (virTypedParameterPtr params, int nparams), (params, nparams))
