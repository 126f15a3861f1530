/*
 * Files written so that a crash never leaves half of one: every write of
 * vdctl's state (the state directory, the engines' records, the restart
 * book) goes through vd_file_write_atomic().
 */
#ifndef VD_FILE_H
#define VD_FILE_H

#include <stddef.h>

#include "vd/error.h"

/* Write DATA to PATH atomically: a temporary file beside it, fsync, rename,
 * fsync of the directory. A file that already holds exactly DATA is left
 * alone (no write, no fsync). */
int vd_file_write_atomic(const char *path, const char *data, size_t len, struct vd_error *err);

/* Remove PATH (none is fine) and make that durable (fsync of its directory). */
int vd_file_remove(const char *path, struct vd_error *err);

/* PATH as people read it: "." segments and "DIR/.." pairs taken out, repeated
 * slashes made one (by the letters: no link is followed), into out. */
void vd_file_tidy_path(const char *path, char *out, size_t size);

/* mkdir -p, mode 0755. */
int vd_file_mkdir_p(const char *path, struct vd_error *err);

#endif
