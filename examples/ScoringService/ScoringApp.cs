using System.Text.Json;

namespace ScoringService;

/// <summary>
/// The service: <c>POST /predict</c> scores one JSON row (an object) or a batch (an array of objects, or
/// <c>{"rows": [...]}</c>); <c>GET /health</c> says which model is loaded and what a row needs. A bad request gets 400
/// naming the field and row; nothing a client sends gives a 500.
/// </summary>
public static class ScoringApp
{
    /// <summary>Builds the app; configuration comes from <paramref name="args"/>, appsettings and the environment (<c>--Model:Path=model.zip</c>, <c>--urls</c>).</summary>
    public static WebApplication Create(string[] args)
    {
        var builder = WebApplication.CreateSlimBuilder(args);
        var options = builder.Configuration.GetSection("Model").Get<ScoringOptions>() ?? new ScoringOptions();
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton<ModelHost>();
        var app = builder.Build();
        var host = app.Services.GetRequiredService<ModelHost>();   // load now: a bad model file fails start-up, not the first request
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("ScoringService.Predict");
        long served = 0, rejected = 0;

        app.MapGet("/health", () =>
        {
            using var lease = host.Acquire();
            var m = lease.Model;
            return Results.Ok(new
            {
                status = "ok", model = m.Path, loadedUtc = m.LoadedUtc, description = m.Description, versions = m.Versions,
                fields = m.Scorer.Fields, outputs = m.Scorer.OutputNames, reloads = host.Reloads,
                lastReloadError = host.LastReloadError, served = Interlocked.Read(ref served), rejected = Interlocked.Read(ref rejected),
            });
        });

        app.MapPost("/predict", async (HttpRequest request) =>
        {
            try
            {
                JsonDocument doc;
                try
                {
                    doc = await JsonDocument.ParseAsync(request.Body, cancellationToken: request.HttpContext.RequestAborted);
                }
                catch (JsonException e)
                {
                    throw new BadRequestException($"the body is not JSON: {e.Message}");
                }
                using (doc)
                {
                    var rows = Rows(doc.RootElement, options.MaxRowsPerRequest);
                    using var lease = host.Acquire();
                    var predictions = lease.Model.Scorer.Predict(rows);
                    Interlocked.Add(ref served, predictions.Count);
                    return Results.Ok(new { predictions });
                }
            }
            catch (BadRequestException e)
            {
                Interlocked.Increment(ref rejected);
                log.LogInformation("400: {Reason}", e.Message);
                return Results.Problem(e.Message, statusCode: StatusCodes.Status400BadRequest, title: "Bad request");
            }
        });
        return app;
    }

    private static IReadOnlyList<JsonElement> Rows(JsonElement root, int max)
    {
        var rows = root.ValueKind switch
        {
            JsonValueKind.Array => root.EnumerateArray().ToList(),
            JsonValueKind.Object when root.TryGetProperty("rows", out var r) && r.ValueKind == JsonValueKind.Array => r.EnumerateArray().ToList(),
            JsonValueKind.Object => [root],
            _ => throw new BadRequestException($"the body must be a row (a JSON object), an array of rows or {{\"rows\": [...]}}; got {root.ValueKind}."),
        };
        if (rows.Count == 0) throw new BadRequestException("the request holds no rows.");
        if (rows.Count > max) throw new BadRequestException($"the request holds {rows.Count} rows; at most {max} are allowed (Model:MaxRowsPerRequest).");
        return rows;
    }
}
