# bench/workfs.sh, sourced by bench/run.sh and bench/peers.sh: a file system
# of the bench's own for its work folder, new for every run.
#
# Why: without a journal (this project's VMs' root file system), ext4 skips
# every inode deleted "recently" when it allocates one (recently_deleted() in
# fs/ext4/ialloc.c), reading an inode-table block for each. A bench resets a
# tool by deleting its state, so the next tool's build paid for the deletion
# (up to twice the wall time of a build that unpacks an image), whichever
# tool it was. A CI runner's disk is a journaled ext4 (GitHub's are) where a
# deletion costs the next build nothing: the work folder gets one like it, a
# journaled ext4 made with mkfs's defaults on a loop device (direct I/O: the
# bytes are not cached twice), its inode tables written before the run (no
# lazy initialisation in the background while it measures).

# workfs_mount DIR: mounts a new file system on the empty folder DIR. Sets
# WORKFS to a sentence for the report: what DIR is. Without root or a loop
# device, DIR stays on the host's file system, and WORKFS says so.
workfs_mount() {
  local dir=$1 host
  host="$(findmnt -no FSTYPE -T "$dir") ($(findmnt -no SOURCE -T "$dir"))"
  workfs_dir=$dir workfs_image="" workfs_dev=""
  if [[ $(id -u) -ne 0 ]] || ! command -v mkfs.ext4 losetup >/dev/null; then
    WORKFS="the host's $host: not root, or no mkfs.ext4 and losetup"
    return 0
  fi
  workfs_image=$dir.img
  if truncate -s 32G "$workfs_image" &&
    mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$workfs_image" &&
    workfs_dev=$(losetup --direct-io=on -f --show "$workfs_image") &&
    mount "$workfs_dev" "$dir"; then
    WORKFS="a journaled ext4 of its own, made for this run (mkfs.ext4's defaults, 32 GB sparse image on a loop device with direct I/O, on the host's $host)"
  else
    workfs_unmount
    WORKFS="the host's $host: making a file system of its own failed"
  fi
}

# workfs_unmount: undoes workfs_mount (what is mounted under DIR must be
# unmounted first); DIR is left empty.
workfs_unmount() {
  if [[ -n ${workfs_dev:-} ]]; then
    # not mounted when mount itself failed
    ! mountpoint -q "$workfs_dir" || umount "$workfs_dir" || umount -l "$workfs_dir"
    losetup -d "$workfs_dev"
  fi
  [[ -z ${workfs_image:-} ]] || rm -f "$workfs_image"
  workfs_image="" workfs_dev=""
}
