/*
 * The labels every replica vdctl makes carries, and the only ones by which
 * it finds, changes or removes anything.
 *
 * Docker: container labels. libvirt: child elements of a <vd:replica>
 * element in vdctl's XML namespace inside the domain's <metadata>.
 */
#ifndef VD_LABELS_H
#define VD_LABELS_H

#define VD_LABEL_PREFIX "org.vdctl."
#define VD_LABEL_MANAGED VD_LABEL_PREFIX "managed"     /* always "true" */
#define VD_LABEL_SERVICE VD_LABEL_PREFIX "service"     /* service name */
#define VD_LABEL_INDEX VD_LABEL_PREFIX "index"         /* replica index, 0.. */
#define VD_LABEL_SPEC_HASH VD_LABEL_PREFIX "spec-hash" /* hash of the replica spec */
#define VD_LABEL_MANIFEST VD_LABEL_PREFIX "manifest"   /* manifest identity */
#define VD_LABEL_OWNER VD_LABEL_PREFIX "owner"         /* the id of the state directory */

/* libvirt <metadata> namespace of vdctl's <replica> element */
#define VD_XML_NS "https://vdctl.org/xmlns/replica/1"
#define VD_XML_PREFIX "vd"

/* Replica object names: vd-<service>-<index> */
#define VD_NAME_PREFIX "vd-"

#endif
