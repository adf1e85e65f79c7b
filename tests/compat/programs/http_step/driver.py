"""HTTP step against a scoring service the program starts on 127.0.0.1."""

import asyncio
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml
from ruvon.builder import WorkflowBuilder
from ruvon.implementations.execution.sync import SyncExecutor
from ruvon.implementations.expression_evaluator.simple import SimpleExpressionEvaluator
from ruvon.implementations.observability.noop import NoopWorkflowObserver
from ruvon.implementations.persistence.memory import InMemoryPersistence
from ruvon.implementations.templating.jinja2 import Jinja2TemplateEngine
from ruvon.models import WorkflowFailedException

HERE = os.path.dirname(os.path.abspath(__file__))


class ScoringService(BaseHTTPRequestHandler):
    """POST /score -> {"score": 720, "customer_id": ...}; remembers what it was sent."""

    received: list = []

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        self.received.append({"method": "POST", "path": self.path, "body": body})
        payload = json.dumps({"score": 720, "customer_id": (body or {}).get("customer_id")})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload.encode())

    def log_message(self, format, *args):
        pass


def load_registry(path: str) -> dict:
    with open(path) as f:
        entries = yaml.safe_load(f)["workflows"]
    return {entry["type"]: entry for entry in entries}


async def main(persistence_provider=None, execution_provider=None) -> dict:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScoringService)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ["SCORING_SERVICE_URL"] = f"http://127.0.0.1:{server.server_address[1]}"

    owns_persistence = persistence_provider is None
    persistence = persistence_provider or InMemoryPersistence()
    execution = execution_provider or SyncExecutor()
    if owns_persistence:
        await persistence.initialize()

    builder = WorkflowBuilder(
        workflow_registry=load_registry(os.path.join(HERE, "workflow_registry.yaml")),
        expression_evaluator_cls=SimpleExpressionEvaluator,
        template_engine_cls=Jinja2TemplateEngine,
        config_dir=HERE,
    )
    workflow = await builder.create_workflow(
        workflow_type="CreditScore",
        persistence_provider=persistence,
        execution_provider=execution,
        workflow_builder=builder,
        expression_evaluator_cls=SimpleExpressionEvaluator,
        template_engine_cls=Jinja2TemplateEngine,
        workflow_observer=NoopWorkflowObserver(),
        initial_data={"customer_id": "C-881", "amount": 1500.0},
    )
    await persistence.save_workflow(workflow.id, workflow.to_dict())

    calls = []
    while workflow.status == "ACTIVE" and len(calls) < 10:
        try:
            result, next_step = await workflow.next_step(user_input={})
            calls.append({"result": result, "next_step": next_step, "status": workflow.status})
        except WorkflowFailedException as exc:
            calls.append({
                "raised": type(exc).__name__,
                "failed_step": exc.step_name,
                "cause": type(exc.original_exception).__name__,
                "detail": str(exc.original_exception),
                "status": workflow.status,
            })

    server.shutdown()
    server.server_close()
    if owns_persistence:
        await persistence.close()
    return {
        "status": workflow.status,
        "current_step": workflow.current_step_name,
        "state": workflow.state.model_dump(mode="json"),
        "trail": list(workflow.state.trail),
        "calls": calls,
        "notes": {"requests_received": ScoringService.received},
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main()), indent=2, sort_keys=True, default=str))
