"""A pipecat voice agent with a GWM avatar as its face (run: ``python bot.py``).

Your own STT, LLM and TTS (here: local Whisper, any OpenAI-compatible LLM, local
Piper), pipecat's WebRTC transport with video out, and ``GWMAvatarVideoService``
between the TTS and the transport. pipecat's development runner serves a page at
http://localhost:7860/client to talk to it. Needs:

    pip install "pipecat-ai[runner,webrtc,silero,whisper,openai,piper]" gwm-avatars-pipecat
    GWM_AVATAR_URL=http://127.0.0.1:8080 GWM_AVATAR_KEY=... OPENAI_API_KEY=... python bot.py
"""

import os

from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.runner.types import RunnerArguments
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.piper.tts import PiperTTSService
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport
from pipecat.workers.runner import WorkerRunner

from gwm_avatars_pipecat import GWMAvatarVideoService

SIZE = 512  # the avatar service's render.size (its video is square)


async def bot(runner_args: RunnerArguments) -> None:
    """One call: the runner hands over the caller's WebRTC connection."""
    transport = SmallWebRTCTransport(
        webrtc_connection=runner_args.webrtc_connection,
        params=TransportParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            video_out_enabled=True,
            video_out_is_live=True,
            video_out_width=SIZE,
            video_out_height=SIZE,
            video_out_framerate=25,
        ),
    )
    context = LLMContext(
        [{"role": "system", "content": "You are Nova. Answer in one or two spoken sentences."}]
    )
    aggregators = LLMContextAggregatorPair(
        context, user_params=LLMUserAggregatorParams(vad_analyzer=SileroVADAnalyzer())
    )
    avatar = GWMAvatarVideoService(
        url=os.environ.get("GWM_AVATAR_URL", "http://127.0.0.1:8080"),
        api_key=os.environ.get("GWM_AVATAR_KEY"),
        avatar="default",
    )
    pipeline = Pipeline(
        [
            transport.input(),
            WhisperSTTService(),
            aggregators.user(),
            OpenAILLMService(api_key=os.environ["OPENAI_API_KEY"]),
            PiperTTSService(voice_id="en_US-ryan-high"),
            avatar,  # TTS audio in; the avatar's synchronized speech and face out
            transport.output(),
            aggregators.assistant(),
        ]
    )
    worker = PipelineWorker(pipeline, params=PipelineParams(enable_metrics=True))

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(transport: SmallWebRTCTransport, client: object) -> None:
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=runner_args.handle_sigint)
    await runner.add_workers(worker)
    await runner.run()


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
