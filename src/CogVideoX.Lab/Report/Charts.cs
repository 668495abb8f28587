using CogVideoX.Media;
using ScottPlot;

namespace CogVideoX.Lab.Report;

/// <summary>One line (or set of bars) of a chart: a label and its points (x is a number or a category index).</summary>
public sealed record ChartSeries(string Label, IReadOnlyList<(double X, double Y)> Points);

/// <summary>A small chart of one quantity against one setting.</summary>
public sealed record ChartSpec
{
    public required string Title { get; init; }

    public required string XLabel { get; init; }

    public required string YLabel { get; init; }

    public required IReadOnlyList<ChartSeries> Series { get; init; }

    /// <summary>Tick labels for categorical x (positions 0, 1, …); null for a numeric axis.</summary>
    public IReadOnlyList<string>? Categories { get; init; }

    /// <summary>Start the y axis at zero (times, memory), so ratios read true.</summary>
    public bool FromZero { get; init; }
}

/// <summary>Draws report charts with ScottPlot (PNG).</summary>
public static class Charts
{
    public const int Width = 420, Height = 280;

    public static void SavePng(ChartSpec spec, string path)
    {
        var plot = new Plot();
        plot.FigureBackground.Color = Colors.White;
        plot.DataBackground.Color = Color.FromHex("#FAFAFC");
        plot.Grid.MajorLineColor = Color.FromHex("#E4E6EB");
        var palette = new ScottPlot.Palettes.Category10();
        bool categorical = spec.Categories is not null;
        bool bars = categorical && spec.Series.Count == 1;
        for (int i = 0; i < spec.Series.Count; i++)
        {
            var s = spec.Series[i];
            var points = s.Points.Where(p => double.IsFinite(p.Y)).OrderBy(p => p.X).ToArray();
            if (points.Length == 0) continue;
            var color = palette.GetColor(i);
            if (bars)
            {
                var barPlot = plot.Add.Bars(points.Select(p => p.X).ToArray(), points.Select(p => p.Y).ToArray());
                barPlot.Color = color;
                barPlot.LegendText = s.Label;
            }
            else
            {
                var scatter = plot.Add.Scatter(points.Select(p => p.X).ToArray(), points.Select(p => p.Y).ToArray(), color);
                scatter.LegendText = s.Label;
                scatter.LineWidth = categorical ? 0 : 2;
                scatter.MarkerSize = 8;
            }
        }
        plot.Title(spec.Title, 14);
        plot.XLabel(spec.XLabel, 12);
        plot.YLabel(spec.YLabel, 12);
        if (bars) plot.Axes.Margins(bottom: 0);
        else if (spec.FromZero)
        {
            double top = spec.Series.SelectMany(s => s.Points).Where(p => double.IsFinite(p.Y)).Select(p => p.Y).DefaultIfEmpty(1).Max();
            plot.Axes.AutoScaleX();
            plot.Axes.SetLimitsY(0, top > 0 ? top * 1.12 : 1);
        }
        int height = Height;
        if (spec.Categories is { } categories)
        {
            plot.Axes.Bottom.SetTicks(Enumerable.Range(0, categories.Count).Select(i => (double)i).ToArray(), categories.ToArray());
            int longest = categories.Max(c => c.Length);
            if (longest > 6)
            {
                // Upright labels hang straight down from their tick: a slanted one leans past the left edge and is cut
                // ("murai_pioggia"). The axis and the image grow by the longest label, so the plot keeps its height.
                int labels = (int)Math.Ceiling(longest * 7.5) + 36;
                plot.Axes.Bottom.TickLabelStyle.Rotation = -90;
                plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleRight;
                plot.Axes.Bottom.MinimumSize = labels;
                height += Math.Max(0, labels - 50);
            }
            plot.Axes.SetLimitsX(-0.6, categories.Count - 0.4);
        }
        if (spec.Series.Count > 1) plot.ShowLegend(Alignment.UpperLeft);
        else plot.HideLegend();
        AtomicFile.WriteAllBytes(path, plot.GetImageBytes(Width, height, ImageFormat.Png));
    }
}
