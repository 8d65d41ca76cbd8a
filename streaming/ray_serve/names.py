"""Names of the deployments inside the Ray Serve app (also the stage names in the config).

Kept apart from the deployments so that naming them does not import Ray.
"""

STT = "stt"
TTS = "tts"
RENDER = "render"
GATEWAY = "gateway"
