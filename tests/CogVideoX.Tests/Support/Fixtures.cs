using CogVideoX.Engine;
using CogVideoX.Weights;
using Xunit.Abstractions;

namespace CogVideoX.Tests;

/// <summary>Locates the repository's copied fixtures (tests/fixtures/golden) from the test binary.</summary>
public static class Fixtures
{
    private static readonly Lazy<string> s_root = new(FindRoot);

    /// <summary>The repository root.</summary>
    public static string RepoRoot => s_root.Value;

    public static string Golden => Path.Combine(RepoRoot, "tests", "fixtures", "golden");

    public static string Path2b => Path.Combine(Golden, "pipeline_2b_style");

    public static string Path5b => Path.Combine(Golden, "pipeline_5b_style");

    public static string GoldenFile(params string[] parts) => Path.Combine(new[] { Golden }.Concat(parts).ToArray());

    /// <summary>Loads a whole safetensors fixture as float32 CPU tensors (caller disposes).</summary>
    public static Dictionary<string, Tensor> LoadAll(string path)
    {
        using var f = SafetensorsFile.Open(path);
        return f.Entries.Keys.ToDictionary(k => k, k => f.Load(k));
    }

    /// <summary>A whole safetensors fixture as float32 CPU tensors, all disposed with the returned set.</summary>
    public static FixtureTensors Load(string path) => new(LoadAll(path));

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null)
        {
            if (Directory.Exists(Path.Combine(dir.FullName, "tests", "fixtures", "golden")))
                return dir.FullName;
            dir = dir.Parent;
        }
        throw new DirectoryNotFoundException("tests/fixtures/golden not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>A fixture's tensors by name; disposing the set disposes them all.</summary>
public sealed class FixtureTensors(Dictionary<string, Tensor> tensors) : IDisposable
{
    public Tensor this[string name] => tensors[name];

    public void Dispose()
    {
        foreach (var t in tensors.Values) t.Dispose();
    }
}

/// <summary>Comparison helpers with the fixture README's error measure.</summary>
public static class Compare
{
    /// <summary>max |a − b|.</summary>
    public static double MaxAbs(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        Assert.Equal(a.Length, b.Length);
        double m = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = Math.Abs((double)a[i] - b[i]);
            if (double.IsNaN(d)) return double.PositiveInfinity;
            m = Math.Max(m, d);
        }
        return m;
    }

    /// <summary>Asserts max |actual − expected| ≤ rel × max(1, max |expected|) (the README's model-output rule).</summary>
    public static double AssertClose(Tensor expected, Tensor actual, double rel, string what)
    {
        Assert.True(expected.Shape.SequenceEqual(actual.Shape), $"{what}: shape {actual.ShapeString} != expected {expected.ShapeString}");
        var e = expected.ToFloatArray();
        var a = actual.ToFloatArray();
        double scale = Math.Max(1.0, e.Length == 0 ? 0 : e.Max(v => Math.Abs(v)));
        double err = MaxAbs(e, a);
        Assert.True(err <= rel * scale, $"{what}: max abs error {err:E3} > {rel:E1} × {scale:G4}");
        return err;
    }

    /// <summary><see cref="AssertClose"/>, then logs the error next to the bound it had to meet.</summary>
    public static double AssertCloseLogged(Tensor expected, Tensor actual, double rel, string what, ITestOutputHelper output)
    {
        double error = AssertClose(expected, actual, rel, what);
        double bound = rel * Math.Max(1.0, expected.ToFloatArray().Max(MathF.Abs));
        output.WriteLine($"{what} {actual.ShapeString}: max abs error {error:E3} (bound {bound:E3})");
        return error;
    }

    /// <summary>Asserts max |actual − expected| ≤ tol (absolute).</summary>
    public static double AssertAbs(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double tol, string what)
    {
        double err = MaxAbs(expected, actual);
        Assert.True(err <= tol, $"{what}: max abs error {err:E3} > {tol:E1}");
        return err;
    }
}
