// binmark's CPU block allocator: large tensors from memory segments of its own.
//
// Why: with glibc's malloc, PyTorch's large tensors share the heap with the many small, long-lived
// objects of an autograd graph (nodes, saved-variable records, tensor headers). Those small objects
// are carved out of the holes freed tensors leave, so the holes stop fitting the next tensors and
// the heap grows: training CU-Net at batch 8 touched about 2.7x the memory that was live at its
// peak (docs/training.md, "Training memory"). Here every allocation of kMinBytes or more comes from
// 64 MiB segments that only large tensors use: best fit over the free runs, 4 KiB granularity, and
// a freed block merges with free neighbours. Smaller requests go to the allocator this one
// replaced. Memory stays with the process for reuse (as the CUDA caching allocator keeps it);
// binmark_blocks_release() gives the free pages back to the operating system.
//
// Installed with c10::SetCPUAllocator (c10/core/CPUAllocator.h). Loaded by binmark/allocator.py,
// which compiles this file against the installed torch on first use. Plain C entry points.

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <pthread.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>
#include <utility>

namespace {

constexpr size_t kMinBytes = size_t(256) << 10;  // smaller requests: the previous allocator
constexpr size_t kGranule = 4096;                // block sizes and addresses: whole pages
constexpr size_t kSegment = size_t(64) << 20;    // mapped at a time (more for a larger block)
constexpr uint8_t kPriority = 200;               // above PyTorch's own CPU allocators'

std::mutex mu;
std::map<char*, size_t> free_by_address;      // free runs: start → length
std::set<std::pair<size_t, char*>> free_by_size;  // the same runs, for best fit
std::unordered_map<char*, size_t> in_use;      // live blocks: start → length
size_t allocated = 0, reserved = 0;
c10::Allocator* previous = nullptr;

// Adds [p, p + n) to the free runs, merged with the runs right before and after it.
void add_free(char* p, size_t n) {
  auto next = free_by_address.lower_bound(p);
  if (next != free_by_address.begin()) {
    auto before = std::prev(next);
    if (before->first + before->second == p) {
      free_by_size.erase({before->second, before->first});
      p = before->first;
      n += before->second;
      free_by_address.erase(before);
    }
  }
  next = free_by_address.lower_bound(p);
  if (next != free_by_address.end() && p + n == next->first) {
    free_by_size.erase({next->second, next->first});
    n += next->second;
    free_by_address.erase(next);
  }
  free_by_address[p] = n;
  free_by_size.insert({n, p});
}

// Tells the profiler (if it records memory) about a block; the totals are read under the lock.
void report(void* p, int64_t delta, size_t live, size_t mapped) {
  c10::reportMemoryUsageToProfiler(p, delta, live, mapped, c10::Device(c10::DeviceType::CPU));
}

void release(void* ptr) {
  std::unique_lock<std::mutex> lock(mu);
  auto it = in_use.find(static_cast<char*>(ptr));
  if (it == in_use.end()) {  // a small block: raw_allocate handed it out from the previous allocator
    lock.unlock();
    previous->raw_deleter()(ptr);
    return;
  }
  size_t n = it->second;
  in_use.erase(it);
  allocated -= n;
  add_free(static_cast<char*>(ptr), n);
  size_t live = allocated, mapped = reserved;
  lock.unlock();
  report(ptr, -static_cast<int64_t>(n), live, mapped);
}

// A block of n bytes (a multiple of kGranule), or nullptr when no memory can be mapped; *live and
// *mapped receive the totals after it.
char* take(size_t n, size_t* live, size_t* mapped) {
  std::lock_guard<std::mutex> lock(mu);
  auto it = free_by_size.lower_bound({n, nullptr});
  if (it == free_by_size.end()) {
    size_t length = n > kSegment ? (n + kSegment - 1) / kSegment * kSegment : kSegment;
    void* m = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return nullptr;
    reserved += length;
    add_free(static_cast<char*>(m), length);
    it = free_by_size.lower_bound({n, nullptr});
  }
  auto [have, p] = *it;
  free_by_size.erase(it);
  free_by_address.erase(p);
  if (have > n) add_free(p + n, have - n);
  in_use[p] = n;
  allocated += n;
  *live = allocated;
  *mapped = reserved;
  return p;
}

struct BlockAllocator final : c10::Allocator {
  c10::DataPtr allocate(size_t nbytes) override {
    if (nbytes < kMinBytes) return previous->allocate(nbytes);
    size_t n = (nbytes + kGranule - 1) / kGranule * kGranule;
    size_t live = 0, mapped = 0;
    char* p = take(n, &live, &mapped);
    if (p == nullptr) return previous->allocate(nbytes);  // out of address space: let it report
    report(p, static_cast<int64_t>(n), live, mapped);
    return {p, p, &release, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }
  void copy_data(void* dest, const void* src, std::size_t count) const override { std::memcpy(dest, src, count); }
};

BlockAllocator instance;

// fork() while another thread holds the lock would leave the child's copy locked forever
void before_fork() { mu.lock(); }
void after_fork() { mu.unlock(); }

}  // namespace

extern "C" {

// Installs the allocator for every later CPU allocation (idempotent).
__attribute__((visibility("default"))) void binmark_blocks_enable(void) {
  std::lock_guard<std::mutex> lock(mu);
  if (previous != nullptr) return;
  previous = c10::GetCPUAllocator();
  pthread_atfork(before_fork, after_fork, after_fork);
  c10::SetCPUAllocator(&instance, kPriority);
}

// Bytes in live blocks, and bytes mapped (live, free, or given back but still mapped).
__attribute__((visibility("default"))) void binmark_blocks_stats(uint64_t* live, uint64_t* mapped) {
  std::lock_guard<std::mutex> lock(mu);
  *live = allocated;
  *mapped = reserved;
}

// Gives the pages of every free run back to the operating system (they stay mapped, and are
// zero-filled on their next use); returns the bytes given back.
__attribute__((visibility("default"))) uint64_t binmark_blocks_release(void) {
  std::lock_guard<std::mutex> lock(mu);
  uint64_t given = 0;
  for (const auto& [p, n] : free_by_address) {
    if (madvise(p, n, MADV_DONTNEED) == 0) given += n;
  }
  return given;
}

}  // extern "C"
