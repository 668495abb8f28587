using System.Diagnostics;

namespace CogVideoX.Engine.Testing;

/// <summary>The median time of one op at a model-sized shape, with its throughput.</summary>
public sealed record OpTiming(string Op, DType DType, string Sizes, double Milliseconds, double Flops, double Bytes, string? Failure = null)
{
    /// <summary>TFLOP/s for matrix work, GB/s (bytes read plus written, counted once) for the rest.</summary>
    public string Throughput => Failure is not null ? "FAILED: " + Failure : Flops > 0
        ? $"{Flops / (Milliseconds * 1e-3) / 1e12:0.0} TFLOP/s"
        : $"{Bytes / (Milliseconds * 1e-3) / 1e9:0} GB/s";
}

/// <summary>
/// Times ops at the shapes CogVideoX-2b runs (transformer with CFG batch 2: 2 × 17776 tokens (17550 video + 226 text)
/// × 1920; VAE convolutions at 60×90 and 480×720), and each op of one transformer block as the block calls it
/// ("block …", F16). Inputs are random, never zeros; each op is warmed up, then timed one call at a time between
/// synchronisations, and the median is kept.
/// </summary>
public static class OpTimings
{
    private sealed record Bench(string Op, DType DType, string Sizes, double Flops, double Bytes, Func<OpInputs, Func<Tensor>> Setup, int Repeats = 10);

    private static IEnumerable<Bench> Benches()
    {
        const int tokens = 2 * 17776;
        const int width = 1920;
        const int videoTokens = 17776;
        foreach (var dt in new[] { DType.F16, DType.BF16 })
        {
            long n = (long)tokens * width;
            yield return new Bench("copy", dt, $"[{tokens},{width}] contiguous", 0, 2.0 * n * 2,
                c => { var x = c.Rand(tokens, width); return () => x.Clone(); });
            yield return new Bench("copy", dt, $"[2,{videoTokens},30,64] → [2,30,{videoTokens},64]", 0, 2.0 * 2 * videoTokens * width * 2,
                c => { var x = c.Rand(2, videoTokens, 30, 64); var p = x.Permute(0, 2, 1, 3); return () => p.Contiguous(); });
            yield return new Bench("add", dt, $"[{tokens},{width}] + [{width}]", 0, 2.0 * n * 2,
                c => { var x = c.Rand(tokens, width); var b = c.Rand(width); return () => x.Add(b); });
            yield return new Bench("layer_norm", dt, $"[{tokens},{width}] affine", 0, 2.0 * n * 2,
                c => { var x = c.Rand(tokens, width); var g = c.Rand(width); var b = c.Rand(width); return () => x.LayerNorm(g, b, 1e-5f); });
            yield return new Bench("group_norm", dt, "[1,512,4,60,90] g32 silu", 0, 2.0 * 512 * 4 * 60 * 90 * 2,
                c => { var x = c.Rand(1, 512, 4, 60, 90); var g = c.Rand(512); var b = c.Rand(512); return () => x.GroupNorm(32, g, b, 1e-6f, Activation.Silu); });
            yield return new Bench("linear", dt, $"[{tokens},{width}]·[{width},{width}]ᵀ +bias", 2.0 * tokens * width * width, 0,
                c => { var x = c.Rand(tokens, width); var w = c.Uniform([width, width], -0.05f, 0.05f); var b = c.Rand(width); return () => x.Linear(w, b); });
            yield return new Bench("linear", dt, $"[{tokens},{width}]·[{4 * width},{width}]ᵀ +bias gelu_tanh", 2.0 * tokens * width * 4 * width, 0,
                c => { var x = c.Rand(tokens, width); var w = c.Uniform([4 * width, width], -0.05f, 0.05f); var b = c.Rand(4 * width); return () => x.Linear(w, b, Activation.GeluTanh); });
            yield return new Bench("matmul", dt, "[8192,8192]·[8192,8192]", 2.0 * 8192 * 8192 * 8192, 0,
                c => { var a = c.Rand(8192, 8192); var b = c.Rand(8192, 8192); return () => a.MatMul(b); }, 5);
            yield return new Bench("attention", dt, $"[2,30,{videoTokens},64]", 4.0 * 2 * 30 * videoTokens * (double)videoTokens * 64, 0,
                c =>
                {
                    var q = c.Rand(2, 30, videoTokens, 64);
                    var k = c.Rand(2, 30, videoTokens, 64);
                    var v = c.Rand(2, 30, videoTokens, 64);
                    return () => Ops.Attention(q, k, v, null, 0.125f);
                }, 5);
            // The 8-bit attention at the same shape, each kernel (quantization pre-pass included: what a step pays).
            foreach (var kernel in new[] { Sage8Kernel.MmaSync, Sage8Kernel.Wgmma })
            {
                yield return new Bench("sage8_attention", dt, $"[2,30,{videoTokens},64] {Sage8KernelChoice.Name(kernel)}",
                    4.0 * 2 * 30 * videoTokens * (double)videoTokens * 64, 0,
                    c =>
                    {
                        var q = c.Rand(2, 30, videoTokens, 64);
                        var k = c.Rand(2, 30, videoTokens, 64);
                        var v = c.Rand(2, 30, videoTokens, 64);
                        var y = c.Zeros(2, 30, videoTokens, 64);
                        return () =>
                        {
                            using (Sage8KernelChoice.Force(kernel)) Ops.Sage8AttentionInto(q, k, v, 0.125f, y);
                            return y.Alias();
                        };
                    }, 5);
            }
            yield return new Bench("conv3d", dt, "x [1,512,3,60,90] w [512,512,3,3,3] p(0,1,1)", 2.0 * 512 * 512 * 27 * 60 * 90, 0,
                c => { var x = c.Rand(1, 512, 3, 60, 90); var w = c.Uniform([512, 512, 3, 3, 3], -0.02f, 0.02f); var b = c.Rand(512); return () => x.Conv3d(w, b, new Conv3dParams(1, 1, 1, 0, 1, 1)); }, 5);
            yield return new Bench("conv3d", dt, "x [1,128,3,480,720] w [128,128,3,3,3] p(0,1,1)", 2.0 * 128 * 128 * 27 * 480 * 720, 0,
                c => { var x = c.Rand(1, 128, 3, 480, 720); var w = c.Uniform([128, 128, 3, 3, 3], -0.05f, 0.05f); var b = c.Rand(128); return () => x.Conv3d(w, b, new Conv3dParams(1, 1, 1, 0, 1, 1)); }, 3);
        }
    }

    /// <summary>One CogVideoX-2b transformer block's ops at full size, each as the block calls it (layouts included).</summary>
    private static IEnumerable<Bench> BlockBenches()
    {
        const int b = 2, s = 17776, text = 226, heads = 30, hd = 64, d = heads * hd, rows = b * s;
        var dt = DType.F16;
        double full = (double)rows * d * 2;
        yield return new Bench("block ada_norm", dt, $"[{b},{s - text},{d}] → view, modulation [{b},1,{d}]", 0, 2 * full,
            c =>
            {
                var x = c.Rand(b, s, d);
                var y = c.Zeros(b, s, d);
                var modulation = c.Rand(b, 6 * d);
                var scale = modulation.Narrow(1, d, d).Unsqueeze(1);
                var shift = modulation.Narrow(1, 0, d).Unsqueeze(1);
                var part = x.Narrow(1, text, s - text);
                var target = y.Narrow(1, text, s - text);
                return () =>
                {
                    part.ModulatedLayerNormInto(null, null, scale, shift, 1e-5f, target);
                    return target.Alias();
                };
            });
        yield return new Bench("block qkv", dt, $"[{rows},{d}]·[{3 * d},{d}]ᵀ +bias", 2.0 * rows * d * 3 * d, 0,
            c => { var x = c.Rand(rows, d); var w = c.Uniform([3 * d, d], -0.05f, 0.05f); var bias = c.Rand(3 * d); return () => x.Linear(w, bias); });
        yield return new Bench("block qk_norm", dt, $"q heads of packed [{b},{s},3,{heads},{hd}]", 0, 2.0 * rows * d * 2 / 1,
            c =>
            {
                var qkv = c.Rand(b, s, 3, heads, hd);
                var q = qkv.Select(2, 0).Permute(0, 2, 1, 3);
                var g = c.Rand(hd);
                var bias = c.Rand(hd);
                return () => q.LayerNorm(g, bias, 1e-6f);
            });
        // v as the strided view of the packed projection the block passes, then copied contiguous first.
        foreach (bool copyV in new[] { false, true })
        {
            yield return new Bench("block attention", dt, copyV ? "as above, v copied contiguous first" : $"packed qkv [{b},{s},3,{heads},{hd}] → view",
                4.0 * b * heads * s * (double)s * hd, 0,
                c =>
                {
                    var qkv = c.Rand(b, s, 3, heads, hd);
                    var q = c.Rand(b, heads, s, hd);
                    var k = c.Rand(b, heads, s, hd);
                    var vView = qkv.Select(2, 2).Permute(0, 2, 1, 3);
                    var merged = c.Zeros(b, s, heads, hd);
                    var y = merged.Permute(0, 2, 1, 3);
                    return () =>
                    {
                        using var copy = copyV ? vView.Contiguous() : null;
                        Ops.AttentionInto(q, k, copy ?? vView, null, 0.125f, y);
                        return y.Alias();
                    };
                }, 5);
        }
        yield return new Bench("block out", dt, $"[{rows},{d}]·[{d},{d}]ᵀ +bias", 2.0 * rows * d * d, 0,
            c => { var x = c.Rand(rows, d); var w = c.Uniform([d, d], -0.05f, 0.05f); var bias = c.Rand(d); return () => x.Linear(w, bias); });
        yield return new Bench("block add_mul", dt, $"[{b},{s - text},{d}] += h ⊙ gate [{b},1,{d}] in place", 0, 3 * full,
            c =>
            {
                var x = c.Rand(b, s, d);
                var h = c.Rand(b, s, d);
                var gate = c.Rand(b, 6 * d).Narrow(1, 2 * d, d).Unsqueeze(1);
                var target = x.Narrow(1, text, s - text);
                var part = h.Narrow(1, text, s - text);
                return () =>
                {
                    target.AddMulInto(part, gate, target);
                    return target.Alias();
                };
            });
        yield return new Bench("block ff_in", dt, $"[{rows},{d}]·[{4 * d},{d}]ᵀ +bias gelu_tanh", 2.0 * rows * d * 4 * d, 0,
            c => { var x = c.Rand(rows, d); var w = c.Uniform([4 * d, d], -0.05f, 0.05f); var bias = c.Rand(4 * d); return () => x.Linear(w, bias, Activation.GeluTanh); });
        yield return new Bench("block ff_out", dt, $"[{rows},{4 * d}]·[{d},{4 * d}]ᵀ +bias", 2.0 * rows * 4 * d * d, 0,
            c => { var x = c.Rand(rows, 4 * d); var w = c.Uniform([d, 4 * d], -0.05f, 0.05f); var bias = c.Rand(d); return () => x.Linear(w, bias); });
        // Under --linear fp8 (sm_89 and newer; elsewhere these report why not): the norm written as FP8 codes and scales
        // (against "block ada_norm" above), and the activations' quantization of the attention output and GELU output.
        yield return new Bench("block fp8_ada_norm", dt, $"[{b},{s - text},{d}] → codes view and scales, modulation [{b},1,{d}]", 0, 1.5 * full,
            c =>
            {
                var x = c.Rand(b, s, d);
                var y = Fp8Activation.Empty(c.Backend, dt, b, s, d);
                var modulation = c.Rand(b, 6 * d);
                var scale = modulation.Narrow(1, d, d).Unsqueeze(1);
                var shift = modulation.Narrow(1, 0, d).Unsqueeze(1);
                var part = x.Narrow(1, text, s - text);
                var codes = y.Codes.Narrow(1, text, s - text);
                var scales = y.Scales.Narrow(1, text, s - text);
                return () =>
                {
                    part.ModulatedLayerNormFp8Into(null, null, scale, shift, 1e-5f, codes, scales);
                    return codes.Alias();
                };
            });
        foreach (int width in new[] { d, 4 * d })
        {
            yield return new Bench("block fp8_quantize", dt, $"[{rows},{width}] ({(width == d ? "into to_out" : "into ff.net.2")})", 0, 1.5 * rows * width * 2,
                c =>
                {
                    var x = c.Rand(rows, width);
                    return () =>
                    {
                        using var q = x.QuantizeFp8();
                        return q.Codes.Alias();
                    };
                });
        }
    }

    /// <summary>Runs every timing (optionally only those whose op contains filter); progress gets one line per result.</summary>
    public static List<OpTiming> Run(IBackend backend, string? filter = null, Action<OpTiming>? progress = null)
    {
        var results = new List<OpTiming>();
        int seed = 1;
        foreach (var bench in Benches().Concat(BlockBenches()))
        {
            if (filter is not null && !bench.Op.Contains(filter, StringComparison.OrdinalIgnoreCase)) continue;
            OpTiming timing;
            try
            {
                timing = Time(backend, bench, seed++);
            }
            catch (CogVideoXException e)
            {
                timing = new OpTiming(bench.Op, bench.DType, bench.Sizes, double.NaN, bench.Flops, bench.Bytes, e.Message);
            }
            results.Add(timing);
            progress?.Invoke(timing);
        }
        return results;
    }

    private static OpTiming Time(IBackend backend, Bench bench, int seed)
    {
        using var scope = new TensorScope();
        var op = bench.Setup(new OpInputs(backend, bench.DType, seed));
        for (int i = 0; i < 2; i++) op().Dispose();
        backend.Synchronize();
        var times = new double[bench.Repeats];
        for (int i = 0; i < times.Length; i++)
        {
            var clock = Stopwatch.StartNew();
            using (op()) backend.Synchronize();
            times[i] = clock.Elapsed.TotalMilliseconds;
        }
        Array.Sort(times);
        return new OpTiming(bench.Op, bench.DType, bench.Sizes, times[times.Length / 2], bench.Flops, bench.Bytes);
    }
}
