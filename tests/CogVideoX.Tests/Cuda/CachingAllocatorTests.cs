using CogVideoX.Engine.Cuda;

namespace CogVideoX.Tests.Cuda;

/// <summary>The caching allocator over a fake device: reuse, rounding, statistics and running out of memory.</summary>
public class CachingAllocatorTests
{
    private sealed class FakeDevice(long capacity) : IDeviceMemory
    {
        private ulong _next = 0x1000_0000;
        public readonly Dictionary<ulong, long> Live = new();
        public int Allocations;
        public int Frees;
        public int Synchronizations;

        public long Used => Live.Values.Sum();

        public bool TryAllocate(long bytes, out ulong pointer)
        {
            pointer = 0;
            if (Used + bytes > capacity) return false;
            pointer = _next;
            _next += (ulong)bytes + 4096;
            Live.Add(pointer, bytes);
            Allocations++;
            return true;
        }

        public void Free(ulong pointer)
        {
            Assert.True(Live.Remove(pointer), $"free of unknown pointer 0x{pointer:x}");
            Frees++;
        }

        public void Synchronize() => Synchronizations++;

        public (long Free, long Total) Info() => (capacity - Used, capacity);
    }

    [Theory]
    [InlineData(1, 512)]
    [InlineData(512, 512)]
    [InlineData(513, 1024)]
    [InlineData((1 << 20) - 1, 1 << 20)]
    [InlineData(1 << 20, 1 << 20)]
    [InlineData((1 << 20) + 1, (1 << 20) + (64 << 10))]
    [InlineData((5L << 20) + 3, (5L << 20) + (64 << 10))]
    [InlineData((40L << 20) + 1, 42L << 20)]
    public void SizesRoundToTheirGranule(long request, long expected) =>
        Assert.Equal(expected, CachingAllocator.RoundUp(request));

    [Fact]
    public void FreedBlocksAreReusedWithoutTheDriver()
    {
        var device = new FakeDevice(1L << 30);
        using var allocator = new CachingAllocator(device);
        var a = allocator.Allocate(1000);
        allocator.Free(a);
        var b = allocator.Allocate(900);  // same 1024-byte class
        Assert.Equal(a.Pointer, b.Pointer);
        Assert.Equal(1, device.Allocations);
        Assert.Equal(1, allocator.CacheHits);
    }

    [Fact]
    public void LargeBlocksServeSomewhatSmallerRequestsOnly()
    {
        var device = new FakeDevice(1L << 30);
        using var allocator = new CachingAllocator(device);
        var big = allocator.Allocate(64L << 20);
        allocator.Free(big);
        var close = allocator.Allocate(60L << 20);   // within 1/8: reuses the 64 MiB block
        Assert.Equal(big.Pointer, close.Pointer);
        allocator.Free(close);
        var small = allocator.Allocate(8L << 20);    // far smaller: a new block
        Assert.NotEqual(big.Pointer, small.Pointer);
        Assert.Equal(2, device.Allocations);
    }

    [Fact]
    public void StatisticsTrackCurrentPeakAndReserved()
    {
        var device = new FakeDevice(1L << 30);
        using var allocator = new CachingAllocator(device);
        var a = allocator.Allocate(3L << 20);
        var b = allocator.Allocate(5L << 20);
        Assert.Equal(8L << 20, allocator.AllocatedBytes);
        allocator.Free(a);
        Assert.Equal(5L << 20, allocator.AllocatedBytes);
        Assert.Equal(8L << 20, allocator.PeakAllocatedBytes);
        Assert.Equal(8L << 20, allocator.ReservedBytes);
        allocator.ResetPeak();
        Assert.Equal(5L << 20, allocator.PeakAllocatedBytes);
        allocator.Free(b);
        allocator.ReleaseCache();
        Assert.Equal(0, allocator.ReservedBytes);
        Assert.Empty(device.Live);
    }

    [Fact]
    public void RunningOutReleasesTheCacheAndRetries()
    {
        var device = new FakeDevice(100L << 20);
        using var allocator = new CachingAllocator(device);
        var a = allocator.Allocate(60L << 20);
        allocator.Free(a);                          // cached, still held from the device
        var b = allocator.Allocate(30L << 20);      // too small to reuse a; 60 + 30 fits
        var c = allocator.Allocate(50L << 20);      // 60 + 30 + 50 does not: the cache goes back first
        Assert.Equal(80L << 20, allocator.AllocatedBytes);
        Assert.True(device.Synchronizations > 0, "cached blocks must not go back while work may still use them");
        allocator.Free(b);
        allocator.Free(c);
    }

    [Fact]
    public void OutOfMemoryIsATypedErrorThatSaysWhatToDo()
    {
        var device = new FakeDevice(10L << 20);
        using var allocator = new CachingAllocator(device);
        var e = Assert.Throws<CudaOutOfMemoryException>(() => allocator.Allocate(64L << 20));
        Assert.Equal(64L << 20, e.RequestedBytes);
        Assert.Contains("64.0 MiB", e.Message);
        Assert.Contains("VAE tiling", e.Message);
    }

    [Fact]
    public void DoubleFreeIsCaught()
    {
        var device = new FakeDevice(1L << 30);
        using var allocator = new CachingAllocator(device);
        var a = allocator.Allocate(100);
        allocator.Free(a);
        Assert.Throws<InvalidOperationException>(() => allocator.Free(a));
    }

    [Fact]
    public void DisposeReturnsEverythingToTheDevice()
    {
        var device = new FakeDevice(1L << 30);
        var allocator = new CachingAllocator(device);
        var a = allocator.Allocate(100);
        allocator.Allocate(3L << 20);
        allocator.Free(a);
        allocator.Dispose();
        Assert.Empty(device.Live);
        allocator.Free(a);  // a storage released after its backend is gone: ignored
        Assert.Throws<ObjectDisposedException>(() => allocator.Allocate(10));
    }
}
