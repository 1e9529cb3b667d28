// Image locks, as QEMU takes them: an open file description lock (fcntl F_OFD_SETLK) on
// every disk image a VM opens, shared for a read-only image (and for a backing file),
// exclusive for a writable one. A second VM that would write an image another VM uses,
// or read one another VM writes, is refused instead of corrupting it; the lock goes with the
// file description, so it is gone when the process is (a killed VM leaves no stale lock).
//
// The bytes locked are QEMU's (read locks on byte 100 + each permission held, 200 + each
// permission not shared with others; a conflict is someone else's lock on the opposite
// byte), so doppel and QEMU (qemu-system, qemu-img, qemu-io) refuse each other's writers.
//
// Threads: the VMM's (open, migration switch-over), never the I/O paths.
#pragma once

#include <string>

#include "base/result.h"

namespace doppel {

enum class ImageLockMode { kShared, kExclusive };

// Who else holds a lock on the file `fd` refers to, as "pid 1234 (doppel)" (several are
// joined with ", "); empty if none can be found (another user's process is not visible).
std::string image_lock_holders(int fd);

// The lock of one open image. Not owning: fd must outlive it.
class ImageLock {
 public:
  ImageLock() = default;
  // enabled false (the user's ,locking=off): acquire() and release() do nothing.
  ImageLock(int fd, std::string path, ImageLockMode mode, bool enabled)
      : m_fd(fd), m_path(std::move(path)), m_mode(mode), m_enabled(enabled) {}

  // Takes the lock without waiting. A conflict is an error naming the image, the holder when
  // it can be found, and how to share anyway.
  Result<void> acquire();
  // Drops it (a migration's source at switch-over). Idempotent.
  void release();
  bool held() const { return m_held; }

 private:
  void unlock_all();
  int m_fd = -1;
  std::string m_path;
  ImageLockMode m_mode = ImageLockMode::kShared;
  bool m_enabled = false;
  bool m_held = false;
};

}  // namespace doppel
