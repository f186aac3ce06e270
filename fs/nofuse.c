/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nofuse.c - fs_mount() of a build without libfuse3 (meson -Dfuse=disabled,
 * or libfuse3-dev missing): `didfs mount` then says so and changes nothing.
 */
#include "fs.h"

enum dm_status fs_mount(const struct fs_opts *o, int *is_child, struct dm_err *err)
{
	(void)o;
	*is_child = 0;
	return dm_seterr(err, DM_ENOTSUP, "UnsupportedOperation",
			 "this didfs was built without FUSE (install libfuse3-dev and rebuild)");
}
