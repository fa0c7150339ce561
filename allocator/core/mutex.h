// Mutex: the allocator's lock. An absl::Mutex (Debian's libabsl-dev) behind the standard Lockable
// and SharedLockable names, so std::lock_guard, std::unique_lock and std::shared_lock take it.
//
// Why absl::Mutex and not std::mutex: the allocator's critical sections are short (about 100 ns
// for a vmalloc+vfree in backing none), and glibc's default pthread mutex puts a waiter to sleep on
// the futex at once, so with two threads nearly every handoff costs a futex wait and a wake (two
// system calls and a context switch, microseconds) for a lock that would have been free a few
// hundred nanoseconds later. absl::Mutex spins adaptively before it sleeps (only on machines with
// more than one CPU), so a short handoff costs a cache-line transfer instead. bench/README.md
// ("Thread scaling") has the measurement.
//
// ThreadSanitizer: Debian builds libabsl without TSan, so the annotations absl::Mutex carries for
// TSan are compiled out and TSan would not see it order anything. Under TSan this wrapper makes
// the same annotations itself (the __tsan_mutex_* interface, as absl does when built with TSan),
// so TSan checks the code the lock guards as it checks code under a std::mutex.
#pragma once

#include <absl/synchronization/mutex.h>

#if defined(__SANITIZE_THREAD__)
#define VMFRAG_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define VMFRAG_TSAN 1
#endif
#endif
#ifdef VMFRAG_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace vmfrag {

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() {
    // Debian's libabsl is built with the lock-order (deadlock) checker on: it records every lock
    // acquisition in a graph, a fifth of a backing-none op (perf, 2026-12-01). The allocator's
    // locks nest in one fixed order, so it is turned off, once, for the process (it only affects
    // absl::Mutex's debugging, nothing else).
    static const bool deadlock_checks_off =
        (absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore), true);
    (void)deadlock_checks_off;
#ifdef VMFRAG_TSAN
    __tsan_mutex_create(this, 0);
#endif
  }
  ~Mutex() {
#ifdef VMFRAG_TSAN
    __tsan_mutex_destroy(this, 0);
#endif
  }
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
#ifdef VMFRAG_TSAN
    __tsan_mutex_pre_lock(this, 0);
#endif
    mu_.Lock();
#ifdef VMFRAG_TSAN
    __tsan_mutex_post_lock(this, 0, 0);
#endif
  }
  void unlock() ABSL_UNLOCK_FUNCTION() {
#ifdef VMFRAG_TSAN
    __tsan_mutex_pre_unlock(this, 0);
#endif
    mu_.Unlock();
#ifdef VMFRAG_TSAN
    __tsan_mutex_post_unlock(this, 0);
#endif
  }
  void lock_shared() ABSL_SHARED_LOCK_FUNCTION() {
#ifdef VMFRAG_TSAN
    __tsan_mutex_pre_lock(this, __tsan_mutex_read_lock);
#endif
    mu_.ReaderLock();
#ifdef VMFRAG_TSAN
    __tsan_mutex_post_lock(this, __tsan_mutex_read_lock, 0);
#endif
  }
  void unlock_shared() ABSL_UNLOCK_FUNCTION() {
#ifdef VMFRAG_TSAN
    __tsan_mutex_pre_unlock(this, __tsan_mutex_read_lock);
#endif
    mu_.ReaderUnlock();
#ifdef VMFRAG_TSAN
    __tsan_mutex_post_unlock(this, __tsan_mutex_read_lock);
#endif
  }

  // Aborts (in every build) if no thread holds the lock exclusively: the precondition of the
  // layers' *_locked entry points. One relaxed load.
  void assert_held() const ABSL_ASSERT_EXCLUSIVE_LOCK() { mu_.AssertHeld(); }

 private:
  absl::Mutex mu_;
};

}  // namespace vmfrag
