namespace CogVideoX.Engine.Cuda;

public sealed partial class CudaBackend : IOpProfiling
{
    private readonly List<(string Key, CudaEventHandle Start, CudaEventHandle End)> _profiled = new();
    private readonly Stack<CudaEventHandle> _eventPool = new();
    private bool _profiling;
    private int _profileDepth;

    public void StartProfile()
    {
        MakeCurrent();
        ReleaseProfile();
        _profiling = true;
    }

    public IReadOnlyList<OpProfileEntry> StopProfile()
    {
        _profiling = false;
        MakeCurrent();
        var sums = new Dictionary<string, (int Calls, double Ms)>(StringComparer.Ordinal);
        if (_profiled.Count > 0)
            CudaDriver.Check(CudaDriver.cuEventSynchronize(_profiled[^1].End), "cuEventSynchronize");
        foreach (var (key, start, end) in _profiled)
        {
            CudaDriver.Check(CudaDriver.cuEventElapsedTime(out float ms, start, end), "cuEventElapsedTime");
            sums.TryGetValue(key, out var s);
            sums[key] = (s.Calls + 1, s.Ms + ms);
        }
        ReleaseProfile();
        return sums.Select(p => new OpProfileEntry(p.Key, p.Value.Calls, p.Value.Ms)).OrderByDescending(e => e.Milliseconds).ToList();
    }

    private void ReleaseProfile()
    {
        foreach (var (_, start, end) in _profiled)
        {
            _eventPool.Push(start);
            _eventPool.Push(end);
        }
        _profiled.Clear();
    }

    /// <summary>
    /// Times the op call it wraps when profiling is on: events on the stream around the outermost call only (ops that
    /// call other ops count once, under their own name).
    /// </summary>
    internal ProfileScope Profile(string op, Tensor output, object? detail = null)
    {
        if (!_profiling) return default;
        _profileDepth++;
        if (_profileDepth > 1) return new ProfileScope(this, null, null);
        var start = ProfileEvent();
        CudaDriver.Check(CudaDriver.cuEventRecord(start, _stream), "cuEventRecord");
        string key = $"{op} {output.DType.Name()} {output.ShapeString}{(detail is null ? "" : " " + detail)}";
        return new ProfileScope(this, key, start);
    }

    private CudaEventHandle ProfileEvent()
    {
        if (_eventPool.Count > 0) return _eventPool.Pop();
        CudaDriver.Check(CudaDriver.cuEventCreate(out var e, CudaDriver.EventDefault), "cuEventCreate");
        return e;
    }

    private void EndProfile(string? key, CudaEventHandle? start)
    {
        _profileDepth--;
        if (key is null || start is null) return;
        var end = ProfileEvent();
        CudaDriver.Check(CudaDriver.cuEventRecord(end, _stream), "cuEventRecord");
        _profiled.Add((key, start, end));
    }

    private void DisposeProfile()
    {
        ReleaseProfile();
        while (_eventPool.Count > 0) _eventPool.Pop().Dispose();
    }

    internal readonly struct ProfileScope(CudaBackend? backend, string? key, CudaEventHandle? start) : IDisposable
    {
        public void Dispose() => backend?.EndProfile(key, start);
    }
}
