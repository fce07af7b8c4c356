use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use classify::settings::Settings;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use tracing::Instrument;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// mimalloc rather than glibc malloc: under cargo lambda watch's runtime API (bodies
/// arriving over several reads, long-polled `/next`) glibc's heap grew by 60-120 KB per
/// prediction and never shrank (32 -> 223 MiB over 1,800 JPEG predictions with
/// RUST_BACKTRACE=1, a 63 MiB step without it; 72 -> 477 MiB over 8,000 requests from 8
/// clients), where mimalloc stays flat (62-68 MiB). `make bench-load` prints RSS per round.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One thread: an instance handles one event at a time, and tokio's work-stealing
/// workers would spread each request's allocations over several glibc malloc arenas,
/// which fragment and are never handed back (growth that `MALLOC_ARENA_MAX=1` hid).
/// On one thread everything lives in the main arena and freed memory is reused.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // `Targets` rather than `EnvFilter`: the same `RUST_LOG` lists ("info",
    // "classify=debug,warn") without the regex engine EnvFilter links (0.35 MB of package).
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                // Each event's lines carry its request id (the span below), the refresh's included.
                .with_current_span(true)
                .without_time(),
        )
        .with(filter)
        .init();
    // One clear line and a failed init, rather than an error on every request.
    let app = match Settings::from_env() {
        Ok(settings) => classify::init(settings).await,
        Err(e) => Err(e),
    };
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, model_uri = std::env::var("MODEL_URI").unwrap_or_default(), "init failed");
            return Err(e.into());
        }
    };
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiGatewayV2httpRequest>| {
        let mut request = event.payload;
        // API Gateway's id (the one in its access log); the invocation's where an event
        // carries none, so every answer and log line has one.
        let request_id = request
            .request_context
            .request_id
            .get_or_insert_with(|| event.context.request_id.clone())
            .clone();
        async move {
            app.refresh_if_due().await;
            Ok::<ApiGatewayV2httpResponse, Error>(app.serve(&request).await)
        }
        .instrument(tracing::info_span!("event", request_id))
    }))
    .await
}
