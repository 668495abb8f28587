using System.Text.RegularExpressions;
using CogVideoX.Engine.Cuda;

namespace CogVideoX.Tests.Cuda;

/// <summary>
/// The host's copies of a kernel's launch constants against the kernel source's own #defines (evaluated here, as
/// the preprocessor would), so a change to one side fails without a GPU.
/// </summary>
public partial class KernelConstantsTests
{
    [Fact]
    public void HopperAttentionLaunchConstantsMatchTheKernelSource()
    {
        var defines = Defines(KernelCompiler.Source("attention_sm90"));
        Assert.Equal(CudaBackend.HopperAttentionWarpgroups, Evaluate("ATTN_NW", defines));
        Assert.Equal(CudaBackend.HopperAttentionStages, Evaluate("ATTN_STAGES", defines));
        Assert.Equal(CudaBackend.HopperAttentionThreads, Evaluate("ATTN_THREADS", defines));
        Assert.Equal((long)CudaBackend.HopperAttentionSharedBytes, Evaluate("ATTN_SM90_SMEM", defines));
    }

    [Fact]
    public void EightBitAttentionScanPassesLaunchWithTheKernelsThreadCount()
    {
        Assert.Equal(CudaBackend.Sage8ScanThreads, Evaluate("SAGE_SCAN_THREADS", Defines(KernelCompiler.Source("attention_sage8"))));
        Assert.Equal(CudaBackend.Sage8ScanChunk, Evaluate("SAGE_SCAN_CHUNK", Defines(KernelCompiler.Source("attention_sage8"))));
        Assert.Equal(CudaBackend.Sage8PrepassThreads, Evaluate("SAGE_PRE_THREADS", Defines(KernelCompiler.Source("attention_sage8"))));
        Assert.Equal(CudaBackend.DefaultSage8KvTiles, Evaluate("SAGE_KV_TILES", Defines(KernelCompiler.Source("attention_sage8"))));
        // sage8_scan_q's Q blocks are 4 warps of 16 rows, and every padded row count is a whole number of them.
        Assert.Equal(CudaBackend.Sage8PrepassThreads / 32 * 16, CudaBackend.Sage8QueryBlockRows);
        foreach (var nq in new[] { 1, 17, 64, 65, 193, 17776 })
            foreach (var kernel in new[] { CogVideoX.Engine.Sage8Kernel.MmaSync, CogVideoX.Engine.Sage8Kernel.Wgmma })
                Assert.Equal(0, Sage8Layout.PaddedQueryRows(nq, kernel) % CudaBackend.Sage8QueryBlockRows);
    }

    [Fact]
    public void TheEvaluatorExpandsNestedDefinitions()
    {
        var defines = Defines("#define A 3  // three\n#ifndef B\n#define B (A * (A + 1))\n#endif\n#define C (B - 2 * A) / 3\n" +
            "#define D (A == 3 ? 10 : 20) + (C != 2 ? 100 : 1000)\n");
        Assert.Equal(2, Evaluate("C", defines));
        Assert.Equal(1010, Evaluate("D", defines));
    }

    /// <summary>Object-like #defines, first definition wins (the #ifndef defaults), comments stripped.</summary>
    private static Dictionary<string, string> Defines(string source)
    {
        var defines = new Dictionary<string, string>();
        foreach (Match m in DefineLine().Matches(source))
        {
            string body = m.Groups[2].Value;
            int comment = body.IndexOf("//", StringComparison.Ordinal);
            if (comment >= 0) body = body[..comment];
            defines.TryAdd(m.Groups[1].Value, body.Trim());
        }
        return defines;
    }

    private static long Evaluate(string name, Dictionary<string, string> defines)
    {
        Assert.True(defines.ContainsKey(name), $"the kernel source defines no {name}");
        string text = defines[name];
        for (int depth = 0; Identifier().IsMatch(text); depth++)
        {
            Assert.True(depth < 16, $"{name} does not expand to a number: {text}");
            text = Identifier().Replace(text, m => defines.TryGetValue(m.Value, out var v) ? $"({v})" : throw new InvalidOperationException($"{name} uses {m.Value}, not defined"));
        }
        int at = 0;
        long value = Conditional(text.Replace(" ", ""), ref at);
        Assert.Equal(text.Replace(" ", "").Length, at);
        return value;
    }

    /// <summary>c ? a : b and a == b, a != b over sums: how a default that depends on another knob is written.</summary>
    private static long Conditional(string s, ref int at)
    {
        long condition = Equality(s, ref at);
        if (at >= s.Length || s[at] != '?') return condition;
        at++;
        long then = Conditional(s, ref at);
        Assert.Equal(':', s[at++]);
        long otherwise = Conditional(s, ref at);
        return condition != 0 ? then : otherwise;
    }

    private static long Equality(string s, ref int at)
    {
        long v = Sum(s, ref at);
        while (at + 1 < s.Length && s[at..(at + 2)] is "==" or "!=")
        {
            bool equal = s[at] == '=';
            at += 2;
            v = (v == Sum(s, ref at)) == equal ? 1 : 0;
        }
        return v;
    }

    private static long Sum(string s, ref int at)
    {
        long v = Product(s, ref at);
        while (at < s.Length && s[at] is '+' or '-')
            v = s[at++] == '+' ? v + Product(s, ref at) : v - Product(s, ref at);
        return v;
    }

    private static long Product(string s, ref int at)
    {
        long v = Atom(s, ref at);
        while (at < s.Length && s[at] is '*' or '/')
            v = s[at++] == '*' ? v * Atom(s, ref at) : v / Atom(s, ref at);
        return v;
    }

    private static long Atom(string s, ref int at)
    {
        if (s[at] == '(')
        {
            at++;
            long v = Conditional(s, ref at);
            Assert.Equal(')', s[at++]);
            return v;
        }
        int start = at;
        while (at < s.Length && char.IsAsciiDigit(s[at])) at++;
        return long.Parse(s[start..at]);
    }

    [GeneratedRegex(@"^[ \t]*#define[ \t]+([A-Za-z_]\w*)[ \t]+(.+)$", RegexOptions.Multiline)]
    private static partial Regex DefineLine();

    [GeneratedRegex(@"[A-Za-z_]\w*")]
    private static partial Regex Identifier();
}
